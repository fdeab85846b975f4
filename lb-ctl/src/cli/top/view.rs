//! Drawing `lb-ctl top`: a header with the host and the keys, a table of
//! VIPs and their reals, and a line of drop reasons.
use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Borders, Paragraph, Row, Table},
};

use super::model::{self, Snapshot, ViewState};

/// A rate with an SI prefix: `12.3k`.
pub fn si(v: f64) -> String {
    let (v, unit) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{v:.1}{unit}")
}

pub fn draw(frame: &mut Frame<'_>, snap: &Snapshot, view: &ViewState, error: Option<&str>) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(3),
        Constraint::Length(3),
    ])
    .areas(frame.area());
    let s = &snap.status;
    let title = format!(
        "lb-ctl top  {} ({})  {} VIPs, {} reals, {} healthy  sort: {}  VIP: {}",
        s.interface,
        s.xdp_mode,
        s.vips,
        s.reals,
        s.reals_healthy,
        view.sort.word(),
        view.filter.as_deref().unwrap_or("all"),
    );
    let keys = match error {
        Some(e) => format!("daemon: {e}"),
        None => "q quit   s sort (name, packets/s, bits/s)   f filter by VIP".to_owned(),
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(title), Line::from(keys)])
            .block(Block::default().borders(Borders::BOTTOM)),
        head,
    );

    let mut rows = Vec::new();
    for v in model::rows(snap, view) {
        rows.push(
            Row::new(vec![
                v.vip.clone(),
                String::new(),
                String::new(),
                String::new(),
                si(v.pps),
                si(v.bps),
                v.bgp.clone(),
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        );
        for r in &v.reals {
            rows.push(Row::new(vec![
                format!("  {}", r.address),
                r.state.clone(),
                r.weight.to_string(),
                r.health.clone(),
                si(r.pps),
                si(r.bps),
                String::new(),
            ]));
        }
    }
    let table = Table::new(
        rows,
        [
            Constraint::Length(30),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Min(12),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Min(12),
        ],
    )
    .header(
        Row::new(vec![
            "VIP / real",
            "state",
            "weight",
            "health",
            "pkt/s",
            "bit/s",
            "BGP",
        ])
        .style(Style::default().add_modifier(Modifier::UNDERLINED)),
    );
    frame.render_widget(table, body);

    let drops = model::drop_rates(snap);
    let text = if drops.is_empty() {
        "drops/s: none".to_owned()
    } else {
        let parts: Vec<String> = drops
            .iter()
            .map(|(r, v)| format!("{r} {}", si(*v)))
            .collect();
        format!("drops/s: {}", parts.join("  "))
    };
    frame.render_widget(
        Paragraph::new(text).block(Block::default().borders(Borders::TOP)),
        foot,
    );
}
