//! Where the apps print, and the logging set-up of the binaries.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::EnvFilter;

/// The output of an example app: each line goes to standard output and, for a recording
/// console, into a list that tests can read.
///
/// Clones share the same recording, so the two users of the chat can print to one console.
#[derive(Debug, Clone, Default)]
pub struct Console {
    recorded: Option<Arc<Mutex<Vec<String>>>>,
    quiet: bool,
}

impl Console {
    /// Returns a console that prints to standard output only.
    pub fn stdout() -> Self {
        Console::default()
    }

    /// Returns a console that records every line and prints nothing, for tests.
    pub fn recording() -> Self {
        Console {
            recorded: Some(Arc::default()),
            quiet: true,
        }
    }

    /// Prints one line.
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        if let Some(recorded) = &self.recorded {
            recorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(text.to_owned());
        }
        if !self.quiet {
            let mut stdout = std::io::stdout().lock();
            // A closed standard output (for example `| head`) must not stop the app.
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        }
    }

    /// Returns the lines recorded so far; empty for a console that does not record.
    pub fn lines(&self) -> Vec<String> {
        match &self.recorded {
            Some(recorded) => recorded.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            None => Vec::new(),
        }
    }
}

/// Default log filter: warnings, except from the WebRTC media crates, which warn once per media
/// packet written before the encryption keys of a call are negotiated.
pub const DEFAULT_LOG_FILTER: &str = "warn,rtc=error,webrtc=error";

/// Sends `tracing` logs to standard error, filtered by `RUST_LOG` (default
/// [`DEFAULT_LOG_FILTER`]).
///
/// Calling it twice keeps the first set-up.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
