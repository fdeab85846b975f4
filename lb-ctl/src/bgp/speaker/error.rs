//! What can go wrong between the speaker and gobgpd, typed.
use std::{net::SocketAddr, path::PathBuf};

use super::START_TIMEOUT;
use crate::bgp::Prefix;

/// Why the speaker could not do something; kept as the status's
/// `last_error` (printed with its causes) and logged.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("no gobgpd answers at {api} (manage = false: it is the operator's to run)")]
    NotRunning { api: SocketAddr },
    #[error("start {}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gobgpd (pid {pid}) did not answer at {api} within {START_TIMEOUT:?}")]
    StartTimeout { pid: u32, api: SocketAddr },
    #[error("the gobgpd at {api} runs AS {running}, not the configured {configured}")]
    WrongAs {
        api: SocketAddr,
        running: u32,
        configured: u32,
    },
    #[error("refused to announce {0}: outside anycast_prefixes")]
    Refused(Prefix),
    /// A call to gobgpd's API failed: `call` names it (and its object).
    #[error("{call}")]
    Api {
        call: String,
        #[source]
        source: tonic::Status,
    },
}

/// The [`SpeakerError`] of gobgpd API call `call` failing.
pub(super) fn api(call: impl Into<String>) -> impl FnOnce(tonic::Status) -> SpeakerError {
    let call = call.into();
    move |source| SpeakerError::Api { call, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::chain;

    #[test]
    fn messages_name_the_call_and_keep_the_cause() {
        let prefix: Prefix = "203.0.113.10/32".parse().unwrap();
        let e = api(format!("announce {prefix}"))(tonic::Status::unavailable("gobgpd went away"));
        let shown = chain(&e);
        assert!(shown.starts_with("announce 203.0.113.10/32: "), "{shown}");
        assert!(shown.contains("gobgpd went away"), "{shown}");
        assert_eq!(
            chain(&SpeakerError::Refused(prefix)),
            "refused to announce 203.0.113.10/32: outside anycast_prefixes"
        );
        let api_addr: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        assert_eq!(
            chain(&SpeakerError::WrongAs {
                api: api_addr,
                running: 64500,
                configured: 64512
            }),
            "the gobgpd at 127.0.0.1:50051 runs AS 64500, not the configured 64512"
        );
        let spawn = SpeakerError::Spawn {
            path: "/usr/sbin/gobgpd".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(chain(&spawn), "start /usr/sbin/gobgpd: entity not found");
    }
}
