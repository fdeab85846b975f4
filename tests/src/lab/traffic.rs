//! A bounded request loop through the lab's IPv4 VIP, for tests that
//! change something under traffic and then check that no request failed.
use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{HTTP_PORT, Lab, VIP4, client::http_get};

/// Requests through the VIP from client c1, in two threads, until stopped
/// (bounded: 2 minutes at most); counts answers and keeps failures.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Traffic {
    pub fn start(lab: &Lab) -> Traffic {
        let stop: Arc<AtomicBool> = Arc::default();
        let done: Arc<AtomicUsize> = Arc::default();
        let failed: Arc<Mutex<Vec<String>>> = Arc::default();
        let ns = lab.ns("c1");
        let vip: IpAddr = VIP4.parse().unwrap();
        let workers = (0..2)
            .map(|_| {
                let (ns, stop, done, failed) = (
                    ns.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&done),
                    Arc::clone(&failed),
                );
                std::thread::spawn(move || {
                    let start = Instant::now();
                    while !stop.load(Ordering::Relaxed)
                        && start.elapsed() < Duration::from_secs(120)
                    {
                        match http_get(&ns, vip, HTTP_PORT) {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failed.lock().unwrap().push(format!("{e:#}")),
                        }
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            done,
            failed,
            workers,
        }
    }

    pub fn answered(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Stops; the answered count and the failures.
    pub fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.done.load(Ordering::Relaxed), failed)
    }
}
