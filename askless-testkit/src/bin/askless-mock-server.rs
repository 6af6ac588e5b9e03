//! `askless-mock-server`: a mock Askless 2.0.3 server on a loopback port, for trying clients
//! and examples without a Node.js server.
//!
//! ```text
//! cargo run -p askless-testkit --bin askless-mock-server -- --port 3000 --routes demo
//! ```
//!
//! It prints the WebSocket URL on one line of standard output once it accepts connections, logs
//! to standard error (filter with `RUST_LOG`, default `info`), and exits with status 0 on Ctrl-C
//! or SIGTERM. Invalid arguments exit with status 2, a port that cannot be bound with status 1.

use std::io::{IsTerminal as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use askless_testkit::MockServer;
use askless_testkit::route_sets::{self, DemoOptions, ReferenceOptions};
use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;

/// The application the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RouteSet {
    /// The three Askless example servers: random-numbers, simple-chat and catalog.
    Demo,
    /// The reference application of the golden transcripts: product/all, counter, note, me, ...
    Reference,
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "askless-mock-server",
    version,
    about = "Serve a mock Askless 2.0.3 server on a loopback port.",
    long_about = "Serve a mock Askless 2.0.3 server on a loopback port.\n\n\
        Prints the WebSocket URL on standard output once it accepts connections and logs to \
        standard error (filter with RUST_LOG, default info). Ctrl-C or SIGTERM stops it. \
        Every WebRTC call-signalling route is always served."
)]
struct Args {
    /// TCP port to listen on; 0 picks a free port.
    #[arg(long, default_value_t = 3000)]
    port: u16,

    /// Address to listen on. Only loopback addresses are accepted: 127.0.0.0/8, ::1 or
    /// localhost.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Route set to serve.
    #[arg(long, value_enum, default_value_t = RouteSet::Demo)]
    routes: RouteSet,

    /// Milliseconds after start during which change notifications are held back, as the
    /// Askless server does for its first 4 seconds.
    #[arg(long, default_value_t = 4000)]
    notify_grace_ms: u64,

    /// requestTimeoutInMs advertised to clients, in milliseconds; 0 means "never time out".
    /// [default: 7000 with the demo routes, 3000 with the reference routes]
    #[arg(long)]
    request_timeout_ms: Option<u64>,

    /// Period of the reference `counter` route in milliseconds; 0 stops the counter.
    #[arg(long, default_value_t = 1000)]
    counter_interval_ms: u64,

    /// Delay of the reference `slow` route when the request sets no delayMs, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    slow_default_delay_ms: u64,

    /// Period of the demo's new random numbers in milliseconds; 0 keeps the first number.
    #[arg(long, default_value_t = 1000)]
    random_number_interval_ms: u64,

    /// Period of the demo catalog's server-generated products in milliseconds; 0 disables them.
    #[arg(long, default_value_t = 20_000)]
    catalog_product_interval_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let address = match loopback_address(&args.host, args.port) {
        Ok(address) => address,
        Err(message) => {
            eprintln!("askless-mock-server: {message}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("askless-mock-server: starting the async runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(args, address));
    // Connection tasks still draining must not delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

/// Parses `--host` and refuses anything that is not a loopback address.
fn loopback_address(host: &str, port: u16) -> Result<SocketAddr, String> {
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        let trimmed = host.trim_start_matches('[').trim_end_matches(']');
        trimmed.parse::<IpAddr>().map_err(|_| {
            format!("invalid --host {host:?}: expected a loopback IP address such as 127.0.0.1 or ::1")
        })?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "--host {host} is not a loopback address; the mock serves only 127.0.0.0/8, ::1 or localhost"
        ));
    }
    Ok(SocketAddr::new(ip, port))
}

async fn serve(args: Args, address: SocketAddr) -> ExitCode {
    let mut config = match args.routes {
        RouteSet::Demo => route_sets::demo::config(),
        RouteSet::Reference => route_sets::reference::config(),
    };
    config.notify_grace = Duration::from_millis(args.notify_grace_ms);
    if let Some(timeout) = args.request_timeout_ms {
        config.request_timeout = (timeout > 0).then(|| Duration::from_millis(timeout));
    }

    let server = match MockServer::builder()
        .config(config)
        .bind_address(address)
        .try_start()
        .await
    {
        Ok(server) => server,
        Err(error) => {
            eprintln!("askless-mock-server: listening on {address} failed: {error}");
            return ExitCode::FAILURE;
        }
    };

    let _timers = match args.routes {
        RouteSet::Demo => {
            let mut options = DemoOptions::default();
            options.random_number_interval = optional_period(args.random_number_interval_ms);
            options.catalog_product_interval = optional_period(args.catalog_product_interval_ms);
            route_sets::install_demo(&server, options)
        }
        RouteSet::Reference => {
            let mut options = ReferenceOptions::default();
            options.counter_interval = optional_period(args.counter_interval_ms);
            options.slow_default_delay = Duration::from_millis(args.slow_default_delay_ms);
            route_sets::install_reference(&server, options)
        }
    };

    tracing::info!(url = %server.url(), routes = ?args.routes, "askless-mock-server ready");
    let mut stdout = std::io::stdout().lock();
    // Scripts wait for the ready line. A failed write is logged and the server keeps running,
    // because clients that know the port can still connect.
    if let Err(error) =
        writeln!(stdout, "askless-mock-server listening on {}", server.url()).and_then(|()| stdout.flush())
    {
        tracing::warn!(%error, "writing the ready line to standard output failed");
    }
    drop(stdout);

    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    drop(server);
    ExitCode::SUCCESS
}

fn optional_period(millis: u64) -> Option<Duration> {
    (millis > 0).then(|| Duration::from_millis(millis))
}

/// Waits for Ctrl-C or, on Unix, SIGTERM; returns the signal's name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                }
            }
            Err(error) => {
                tracing::warn!(%error, "listening for SIGTERM failed; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted() {
        assert_eq!(
            loopback_address("127.0.0.1", 80),
            Ok(SocketAddr::from(([127, 0, 0, 1], 80)))
        );
        assert_eq!(
            loopback_address("localhost", 81),
            Ok(SocketAddr::from(([127, 0, 0, 1], 81)))
        );
        assert!(loopback_address("::1", 82).is_ok());
        assert!(loopback_address("[::1]", 83).is_ok());
        assert!(loopback_address("127.1.2.3", 84).is_ok());
    }

    #[test]
    fn other_hosts_are_rejected() {
        let public = loopback_address("0.0.0.0", 80).unwrap_err();
        assert!(public.contains("not a loopback address"), "{public}");
        let name = loopback_address("example.com", 80).unwrap_err();
        assert!(name.contains("invalid --host"), "{name}");
    }
}
