//! `lb-ctl top`: a live view of the daemon's VIPs and reals, refreshed every
//! second from its API; keys sort and filter; `q` quits and the terminal is
//! restored (also on a panic: ratatui's hook).
mod model;
mod view;

use std::{
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use lb_ctl::api::{
    client,
    pb::{self, control_client::ControlClient},
};
use tonic::transport::Channel;

use model::{Snapshot, ViewState};

/// How often the daemon is asked.
const REFRESH: Duration = Duration::from_secs(1);

async fn fetch(c: &mut ControlClient<Channel>) -> Result<Snapshot, tonic::Status> {
    Ok(Snapshot {
        status: c.status(pb::StatusRequest {}).await?.into_inner(),
        vips: c.list_vips(pb::ListVipsRequest {}).await?.into_inner(),
        stats: c.stats(pb::StatsRequest {}).await?.into_inner(),
        health: c.health(pb::HealthRequest {}).await?.into_inner(),
        bgp: c.bgp_status(pb::BgpStatusRequest {}).await?.into_inner(),
    })
}

pub fn run(socket: &Path) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Reach the daemon before taking the terminal: a wrong socket is one
    // clear line, not a blank screen.
    let mut c = rt.block_on(client::connect(socket))?;
    let mut snap = rt
        .block_on(fetch(&mut c))
        .map_err(super::client::status_error)?;
    let mut view = ViewState::default();
    let mut error: Option<String> = None;
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        let mut fetched = Instant::now();
        loop {
            terminal.draw(|f| view::draw(f, &snap, &view, error.as_deref()))?;
            let wait = REFRESH.saturating_sub(fetched.elapsed());
            if event::poll(wait)?
                && let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(());
                    }
                    KeyCode::Char('s') => view.sort = view.sort.next(),
                    KeyCode::Char('f') => {
                        view.filter = model::next_filter(&snap, view.filter.as_deref());
                    }
                    _ => {}
                }
            }
            if fetched.elapsed() >= REFRESH {
                fetched = Instant::now();
                match rt.block_on(fetch(&mut c)) {
                    Ok(s) => {
                        snap = s;
                        error = None;
                    }
                    Err(e) => error = Some(e.message().to_owned()),
                }
            }
        }
    })();
    ratatui::restore();
    result?;
    Ok(ExitCode::SUCCESS)
}
