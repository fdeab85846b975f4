//! Loading the balancer while signals keep arriving for the loading thread
//! (as SIGCHLD does in a process that runs children): the verifier gives up
//! with EAGAIN when a signal is pending, so lb-ctl holds signals back while
//! it loads (and tries again if interrupted all the same). Without that,
//! this test fails on its first load.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lb_ctl::dataplane::{Dataplane, LoadOptions};
use lb_tests::require_root;

extern "C" fn ignore(_: libc::c_int) {}

#[test]
fn the_balancer_loads_while_signals_keep_arriving() {
    if !require_root("the_balancer_loads_while_signals_keep_arriving") {
        return;
    }
    // A handler, so that SIGUSR1 is really delivered (and interrupts).
    // SAFETY: a handler that does nothing is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            ignore as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };
    // SAFETY: pthread_self has no preconditions.
    let loader = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            // Bounded: at most 60 s of signals, one every 2 ms.
            while !stop.load(Ordering::Relaxed) && sent < 30_000 {
                // SAFETY: the loading thread outlives this one (joined
                // below before the test returns).
                unsafe { libc::pthread_kill(loader, libc::SIGUSR1) };
                sent += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            sent
        })
    };
    let mut loaded = 0;
    let mut failure = None;
    for _ in 0..3 {
        match Dataplane::load(&LoadOptions {
            conn_table_size: 4096,
            conn_table_size_v6: 4096,
            pin_dir: None,
            ..LoadOptions::default()
        }) {
            Ok(_) => loaded += 1,
            Err(e) => {
                failure = Some(format!("{e:#}"));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert!(sent > 10, "signals were sent during the loads ({sent})");
    assert_eq!(loaded, 3, "a load failed under signals: {failure:?}");
}
