//! Plain-words descriptions of errors and connection status changes.

use askless_client::{AsklessClient, ConnectionStatus, Error, ErrorKind, StatusListenerGuard};

use crate::Console;

/// Describes `error` in plain words for a person, starting with what happened and ending with
/// the server's code and description when there is one, as `CODE: description`.
///
/// It never contains a credential, because [`Error`] never does.
pub fn describe_error(error: &Error) -> String {
    let server_words = match (error.code(), error.description()) {
        (Some(code), Some(description)) => format!(" ({code}: {description})"),
        (Some(code), None) => format!(" ({code})"),
        _ => String::new(),
    };
    let route = error.route().unwrap_or("the server");
    match error.kind() {
        ErrorKind::PendingAuthentication | ErrorKind::NotAuthenticated => {
            format!("permission denied: `{route}` is for signed-in users only{server_words}")
        }
        ErrorKind::Credential => {
            format!("sign-in rejected: the server did not accept the credential{server_words}")
        }
        ErrorKind::Server => format!("the server rejected the request on `{route}`{server_words}"),
        ErrorKind::Timeout => match error.timeout() {
            Some(after) => format!("no response from the server on `{route}` within {after:?}"),
            None => format!("no response from the server on `{route}`"),
        },
        ErrorKind::NoConnection | ErrorKind::Transport => {
            format!("cannot reach the server: {error}")
        }
        _ => error.to_string(),
    }
}

/// Describes a connection status for a person.
pub fn describe_status(status: &ConnectionStatus) -> String {
    match status {
        ConnectionStatus::Connected => "connected".to_owned(),
        ConnectionStatus::InProgress => "connecting".to_owned(),
        ConnectionStatus::Disconnected { reason } if reason.reconnects_automatically() => {
            format!("disconnected ({reason}); reconnecting")
        }
        ConnectionStatus::Disconnected { reason } => format!("disconnected ({reason})"),
        _ => status.to_string(),
    }
}

/// Prints every connection status change of `client` on `console`, each line starting with
/// `label`, until the returned guard is dropped.
pub fn print_status_changes(client: &AsklessClient, console: &Console, label: &str) -> StatusListenerGuard {
    let console = console.clone();
    let label = label.to_owned();
    client.on_status_change(move |status| {
        console.line(format!("{label}status: {}", describe_status(status)));
    })
}
