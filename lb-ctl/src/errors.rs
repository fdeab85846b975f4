//! Printing typed errors: an error with its chain of causes on one line.
use std::error::Error;

/// `error` and each of its sources, joined by ": ", a cause left out when
/// the message before it already says it (`"VIP x: {source}"` messages).
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("writing the state file")]
        Plain(#[source] std::io::Error),
        #[error("VIP x: {0}")]
        Said(#[source] std::io::Error),
    }

    #[test]
    fn causes_are_appended_once() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(
            chain(&Outer::Plain(io())),
            "writing the state file: disk full"
        );
        assert_eq!(chain(&Outer::Said(io())), "VIP x: disk full");
        assert_eq!(chain(&io()), "disk full");
    }
}
