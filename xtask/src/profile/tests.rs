//! The parsers of perf's and bpftool's text.
use super::*;

#[test]
fn perf_report_lines_become_shares() {
    let text = "    33.40%  [k] lookup_nulls_elem_raw\n\
                \n     10.56%  [k] bpf_prog_ec5ccd3380973b2d_lb_balance\n\
                # a comment\n      0.61%  [.] main\n";
    assert_eq!(
        parse_report(text),
        vec![
            (33.40, "lookup_nulls_elem_raw".to_owned()),
            (10.56, "bpf_prog_ec5ccd3380973b2d_lb_balance".to_owned()),
            (0.61, "main".to_owned()),
        ]
    );
}

#[test]
fn bpftool_source_lines_split_into_text_and_place() {
    assert_eq!(
        split_source("let x = 1; [file:/work/main/lb-ebpf/src/parse.rs line_num:93 line_col:19]"),
        ("let x = 1;", "parse.rs:93".to_owned())
    );
    assert_eq!(split_source("no place"), ("no place", String::new()));
}

#[test]
fn xlated_lines_map_instructions_to_the_source_above_them() {
    let text = "int lb_balance(struct xdp_md * ctx):\n\
                ; let a = 1; [file:/x/a.rs line_num:1 line_col:1]\n   0: (bf) r6 = r1\n   1: (b7) r0 = 2\n\
                ; b(); [file:/x/a.rs line_num:2 line_col:1]\n   2: (95) exit\n";
    let map = parse_xlated_lines(text);
    assert_eq!(map.len(), 3);
    assert!(map[&1].starts_with("let a = 1;"));
    assert!(map[&2].starts_with("b();"));
}

#[test]
fn the_last_online_cpu_of_a_list() {
    for (list, cpu) in [
        ("0-1\n", Some("1")),
        ("0\n", Some("0")),
        ("0,2-3", Some("3")),
        ("0-3,8", Some("8")),
        ("", None),
        ("x", None),
    ] {
        assert_eq!(last_cpu_of(list).as_deref(), cpu, "{list:?}");
    }
}

#[test]
fn the_bench_rows_parse_and_a_malformed_one_is_left_out() {
    let good = "established IPv4\tfloor: XDP_TX\t90\t107.5\t123.000001\t127.5";
    let row = Profiled::parse(good).expect("a row");
    assert_eq!(row.name, "established IPv4");
    assert_eq!(row.floor, "floor: XDP_TX");
    assert_eq!((row.ns, row.sampled_ns), (90.0, 107.5));
    assert_eq!(row.span, ("123.000001".to_owned(), "127.5".to_owned()));
    let floor = Profiled::parse("floor: XDP_TX\t\t46\t56.5\t1\t2").expect("a floor");
    assert!(floor.floor.is_empty());
    for bad in [
        "",
        "name only",
        "a\tb\tnot a number\t1\t2\t3",
        "a\tb\t1\t2\t3",
        "a\tb\t1\t2\t3\t4\t5",
    ] {
        assert!(Profiled::parse(bad).is_none(), "{bad:?}");
    }
}
