//! Fault matrix: every operation kind against every fault the testkit can inject, over real
//! loopback WebSockets to the mock server, under paused tokio time.
//!
//! For each cell the test checks that the call resolves once, with the right value or a typed
//! error, that the server ran a modification at most once, and that a stream delivered a change
//! once. It prints the whole matrix (run with `--nocapture` to see it); RELIABILITY.md keeps a
//! copy.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_client::{AsklessClient, ConnectionStatus, ReadStream};
use askless_protocol::{ClientMessage, UserId, routes};
use askless_testkit::{AuthDecision, MockServer, Notify, Route, Withhold};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Request timeout of the client under test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum virtual wait for a call to resolve; longer than any retry path of the client.
const RESOLVE_WAIT: Duration = Duration::from_secs(180);

/// Virtual wait for things that should happen soon (a frame, a status change).
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Create,
    Update,
    Delete,
    Authenticate,
    Stream,
    CallSignal,
    CallStream,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::Read,
        Op::Create,
        Op::Update,
        Op::Delete,
        Op::Authenticate,
        Op::Stream,
        Op::CallSignal,
        Op::CallStream,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Authenticate => "authenticate",
            Op::Stream => "stream change",
            Op::CallSignal => "call request",
            Op::CallStream => "call receive stream",
        }
    }

    /// Whether the server must run it at most once.
    fn is_modification(self) -> bool {
        matches!(
            self,
            Op::Create | Op::Update | Op::Delete | Op::CallSignal | Op::CallStream
        )
    }

    /// Returns the route whose request frames identify this operation.
    fn route(self) -> &'static str {
        match self {
            Op::CallSignal | Op::CallStream => routes::CALL_REQUEST,
            Op::Authenticate => routes::AUTHENTICATION,
            Op::Stream => "counter",
            _ => "items",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    DropBeforeReceipt,
    DropAfterReceipt,
    DropAfterResponse,
    ReceiptWithheld,
    ResponseDelayed,
    Duplicated,
    HalfOpen,
    Restart,
}

impl Fault {
    const ALL: [Fault; 8] = [
        Fault::DropBeforeReceipt,
        Fault::DropAfterReceipt,
        Fault::DropAfterResponse,
        Fault::ReceiptWithheld,
        Fault::ResponseDelayed,
        Fault::Duplicated,
        Fault::HalfOpen,
        Fault::Restart,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::DropBeforeReceipt => "drop before receipt",
            Fault::DropAfterReceipt => "drop after receipt",
            Fault::DropAfterResponse => "drop after response",
            Fault::ReceiptWithheld => "receipt withheld",
            Fault::ResponseDelayed => "response past timeout",
            Fault::Duplicated => "frames duplicated",
            Fault::HalfOpen => "half-open",
            Fault::Restart => "server restart",
        }
    }
}

/// What one cell produced.
#[derive(Debug, Clone)]
struct Outcome {
    /// `value` or `error:<ErrorKind>`, or `hang` when nothing resolved in time.
    result: String,
    /// Whether the value, when there is one, is the expected one.
    right_value: bool,
    /// Handler executions of the operation's route on the server.
    executions: usize,
    /// For streams: how many times the changed value was delivered.
    deliveries: Option<usize>,
    /// Whether a read on the healthy server succeeded afterwards.
    usable_after: bool,
}

impl Outcome {
    fn cell(&self) -> String {
        let mut cell = self.result.clone();
        if !self.right_value {
            cell.push_str(" (WRONG)");
        }
        let _ = write!(cell, " x{}", self.executions);
        if let Some(deliveries) = self.deliveries {
            let _ = write!(cell, " d{deliveries}");
        }
        if !self.usable_after {
            cell.push_str(" UNUSABLE");
        }
        cell
    }
}

/// The mock server of one cell, with execution counters per route.
struct Fixture {
    server: MockServer,
    executions: Arc<AtomicUsize>,
    authentications: Arc<AtomicUsize>,
    counter: Arc<Mutex<Value>>,
    restarted_at: Mutex<Option<Instant>>,
}

async fn fixture(op: Op) -> Fixture {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| config.record_cleanup_tick = None)
        .start()
        .await;
    let executions = Arc::new(AtomicUsize::new(0));
    let authentications = Arc::new(AtomicUsize::new(0));
    let counter = Arc::new(Mutex::new(json!(0)));

    let counting = |executions: &Arc<AtomicUsize>, counted: bool| {
        let executions = Arc::clone(executions);
        move |_ctx: askless_testkit::RouteContext| {
            if counted {
                executions.fetch_add(1, Ordering::SeqCst);
            }
            async move { Ok(Some(json!({"ok": true}))) }
        }
    };
    server
        .route(Route::read("items").handler(counting(&executions, op == Op::Read)))
        .route(Route::create("items").handler(counting(&executions, op == Op::Create)))
        .route(Route::update("items").handler(counting(&executions, op == Op::Update)))
        .route(Route::delete("items").handler(counting(&executions, op == Op::Delete)))
        .route(Route::read("health").handler(|_ctx| async move { Ok(Some(json!("up"))) }))
        .route(Route::read("counter").handler({
            let counter = Arc::clone(&counter);
            let executions = Arc::clone(&executions);
            move |_ctx| {
                executions.fetch_add(1, Ordering::SeqCst);
                let value = counter.lock().unwrap().clone();
                async move { Ok(Some(value)) }
            }
        }));
    server.authenticate_with({
        let authentications = Arc::clone(&authentications);
        move |credential| {
            authentications.fetch_add(1, Ordering::SeqCst);
            async move {
                match credential["token"].as_str() {
                    Some("caller") => AuthDecision::user("1"),
                    Some("callee") => AuthDecision::user("2"),
                    _ => AuthDecision::user("9"),
                }
            }
        }
    });
    Fixture {
        server,
        executions,
        authentications,
        counter,
        restarted_at: Mutex::new(None),
    }
}

/// Counts the call requests the server executed. The mock runs a request id once per client
/// record and clears its records on a restart, so the count is the number of distinct request
/// ids received before the restart plus those received after it.
fn call_executions(server: &MockServer, restarted_at: Option<Instant>) -> usize {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for frame in server.received_frames() {
        let Some(ClientMessage::Modify(modify)) = frame.client_message() else {
            continue;
        };
        if modify.route != routes::CALL_REQUEST {
            continue;
        }
        let id = modify.client_request_id.as_str().to_owned();
        let epoch = match restarted_at {
            Some(at) if frame.at >= at => &mut after,
            _ => &mut before,
        };
        if !epoch.contains(&id) {
            epoch.push(id);
        }
    }
    before.len() + after.len()
}

async fn wait_connected(client: &AsklessClient) -> bool {
    let mut watch = client.status_watch();
    matches!(
        tokio::time::timeout(WAIT, watch.wait_for(ConnectionStatus::is_connected)).await,
        Ok(Ok(_))
    )
}

async fn wait_disconnected(client: &AsklessClient) {
    let mut watch = client.status_watch();
    let _ = tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected())).await;
}

/// Waits until the server received a request frame of `route`.
async fn wait_request(server: &MockServer, route: &str) {
    let route = route.to_owned();
    let _ = server
        .wait_for_frame(
            move |frame| frame.route().as_deref() == Some(route.as_str()),
            WAIT,
        )
        .await;
}

/// Runs the operation; `Ok(true)` is the expected value.
async fn run_op(client: AsklessClient, op: Op) -> Result<bool, askless_client::Error> {
    let ok = json!({"ok": true});
    match op {
        Op::Read => Ok(client.read("items", json!({"q": 1})).await?.value() == Some(&ok)),
        Op::Create => Ok(client.create("items", json!({"n": 1}), ()).await?.value() == Some(&ok)),
        Op::Update => Ok(client
            .update("items", json!({"n": 2}), json!({"id": 1}))
            .await?
            .value()
            == Some(&ok)),
        Op::Delete => Ok(client.delete("items", json!({"id": 1})).await?.value() == Some(&ok)),
        Op::Authenticate => {
            let authenticated = client.authenticate(json!({"token": "plain"})).await?;
            Ok(authenticated.user_id == Some(UserId::from("9")))
        }
        Op::CallSignal => {
            let body = json!({
                "remoteUserId": "2",
                "sdp": {"sdp": "v=0", "type": "offer"},
                "additionalData": {}
            });
            let output = client.create(routes::CALL_REQUEST, body, ()).await?;
            Ok(output.value() == Some(&json!({"info": "You requested a call"})))
        }
        Op::Stream | Op::CallStream => unreachable!("streams run through their own case functions"),
    }
}

/// Applies the part of `fault` that comes before the operation starts.
fn before(fixture: &Fixture, fault: Fault) {
    let faults = fixture.server.faults();
    match fault {
        Fault::DropBeforeReceipt | Fault::HalfOpen => faults.half_open(true),
        Fault::DropAfterReceipt | Fault::Restart => faults.withhold_responses(Withhold::Drop),
        Fault::ReceiptWithheld => faults.withhold_receipts(true),
        Fault::ResponseDelayed => faults.delay_responses(Some(REQUEST_TIMEOUT + Duration::from_secs(10))),
        Fault::Duplicated => faults.duplicate_frames(usize::MAX),
        Fault::DropAfterResponse => {}
    }
}

/// Applies the part of `fault` that comes while the operation is in flight, then heals the
/// server except for faults that last the whole call.
async fn during(fixture: &Fixture, client: &AsklessClient, op: Op, fault: Fault) {
    let faults = fixture.server.faults();
    match fault {
        Fault::DropBeforeReceipt => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            faults.drop_connections();
            faults.half_open(false);
        }
        Fault::DropAfterReceipt => {
            wait_request(&fixture.server, op.route()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            faults.drop_connections();
            faults.withhold_responses(Withhold::Nothing);
        }
        Fault::HalfOpen => {
            wait_disconnected(client).await;
            faults.half_open(false);
        }
        Fault::Restart => {
            wait_request(&fixture.server, op.route()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            *fixture.restarted_at.lock().unwrap() = Some(Instant::now());
            fixture.server.restart().await;
            faults.withhold_responses(Withhold::Nothing);
        }
        Fault::DropAfterResponse | Fault::ReceiptWithheld | Fault::ResponseDelayed | Fault::Duplicated => {}
    }
}

/// Applies what comes after the operation resolved, and heals the server.
async fn after(fixture: &Fixture, client: &AsklessClient, fault: Fault) {
    let faults = fixture.server.faults();
    if fault == Fault::DropAfterResponse {
        faults.drop_connections();
        wait_disconnected(client).await;
        wait_connected(client).await;
        // Long enough for any resend after the reconnection to reach the server.
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    faults.half_open(false);
    faults.withhold_receipts(false);
    faults.withhold_responses(Withhold::Nothing);
    faults.delay_responses(None);
    faults.duplicate_frames(0);
}

fn describe(result: &Result<bool, askless_client::Error>) -> (String, bool) {
    match result {
        Ok(right) => ("value".to_owned(), *right),
        Err(error) => (format!("error:{:?}", error.kind()), true),
    }
}

async fn usable_after(client: &AsklessClient) -> bool {
    wait_connected(client).await;
    matches!(
        tokio::time::timeout(WAIT, client.read("health", ())).await,
        Ok(Ok(output)) if output.value() == Some(&json!("up"))
    )
}

async fn build_client(fixture: &Fixture) -> AsklessClient {
    AsklessClient::builder(fixture.server.url())
        .request_timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .expect("client connects to the mock")
}

async fn run_request_case(op: Op, fault: Fault) -> Outcome {
    let fixture = fixture(op).await;
    let client = build_client(&fixture).await;
    if op == Op::CallSignal {
        client
            .authenticate(json!({"token": "caller"}))
            .await
            .expect("the caller authenticates before the fault");
    }

    before(&fixture, fault);
    let call = tokio::spawn(run_op(client.clone(), op));
    during(&fixture, &client, op, fault).await;
    let resolved = tokio::time::timeout(RESOLVE_WAIT, call).await;
    let (result, right_value) = match resolved {
        Ok(joined) => describe(&joined.expect("the operation does not panic")),
        Err(_) => ("hang".to_owned(), false),
    };
    after(&fixture, &client, fault).await;

    let executions = match op {
        Op::CallSignal => call_executions(&fixture.server, *fixture.restarted_at.lock().unwrap()),
        Op::Authenticate => fixture.authentications.load(Ordering::SeqCst),
        _ => fixture.executions.load(Ordering::SeqCst),
    };
    let usable = usable_after(&client).await;
    client.close().await;
    Outcome {
        result,
        right_value,
        executions,
        deliveries: None,
        usable_after: usable,
    }
}

/// Counts the values equal to `expected` that `stream` yields within `window`.
async fn count_values(stream: &mut ReadStream, expected: &Value, window: Duration) -> usize {
    count_matching(stream, |value| value == expected, window).await
}

/// Counts the values matching `predicate` that `stream` yields within `window`.
async fn count_matching(
    stream: &mut ReadStream,
    predicate: impl Fn(&Value) -> bool,
    window: Duration,
) -> usize {
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, stream.next()).await {
        if item.as_ref().is_ok_and(&predicate) {
            count += 1;
        }
    }
    count
}

/// Runs a call-stream cell: the callee (user 2) streams the call-receive route, the caller
/// (user 1) requests a call while the fault is active, and the callee's stream must show the
/// request once for each time the server ran it.
async fn run_call_stream_case(fault: Fault) -> Outcome {
    let fixture = fixture(Op::CallStream).await;
    let caller = build_client(&fixture).await;
    caller
        .authenticate(json!({"token": "caller"}))
        .await
        .expect("the caller authenticates before the fault");
    let callee = build_client(&fixture).await;
    callee
        .authenticate(json!({"token": "callee"}))
        .await
        .expect("the callee authenticates before the fault");
    let mut stream = callee
        .read_stream(routes::CALL_RECEIVE, json!({}))
        .await
        .expect("the call-receive stream opens");
    let first = tokio::time::timeout(WAIT, stream.next()).await;
    assert!(
        matches!(&first, Ok(Some(Ok(value))) if value["hasCallRequest"] == json!(false)),
        "first call-receive value under {fault:?}: {first:?}"
    );

    before(&fixture, fault);
    let call = tokio::spawn(run_op(caller.clone(), Op::CallSignal));
    during(&fixture, &caller, Op::CallStream, fault).await;
    let resolved = tokio::time::timeout(RESOLVE_WAIT, call).await;
    let (result, right_value) = match resolved {
        Ok(joined) => describe(&joined.expect("the call request does not panic")),
        Err(_) => ("hang".to_owned(), false),
    };
    let is_call = |value: &Value| value["hasCallRequest"] == json!(true);
    let deliveries = count_matching(&mut stream, is_call, Duration::from_secs(90)).await;
    after(&fixture, &caller, fault).await;
    let late = count_matching(&mut stream, is_call, Duration::from_secs(30)).await;

    let executions = call_executions(&fixture.server, *fixture.restarted_at.lock().unwrap());
    let usable = usable_after(&caller).await && usable_after(&callee).await;
    caller.close().await;
    callee.close().await;
    Outcome {
        result,
        right_value,
        executions,
        deliveries: Some(deliveries + late),
        usable_after: usable,
    }
}

/// Runs a stream cell: the stream opens before the fault, the change is notified while the
/// fault is active, and the delivered values are counted.
async fn run_stream_case(fault: Fault) -> Outcome {
    let fixture = fixture(Op::Stream).await;
    let client = build_client(&fixture).await;
    let mut stream = client.read_stream("counter", ()).await.expect("the stream opens");
    let first = tokio::time::timeout(WAIT, stream.next()).await;
    assert!(
        matches!(&first, Ok(Some(Ok(value))) if *value == json!(0)),
        "first stream value under {fault:?}: {first:?}"
    );

    before(&fixture, fault);
    *fixture.counter.lock().unwrap() = json!(1);
    fixture.server.notify_changes("counter", Notify::all());
    during(&fixture, &client, Op::Stream, fault).await;
    let deliveries = count_values(&mut stream, &json!(1), Duration::from_secs(90)).await;
    after(&fixture, &client, fault).await;
    let late = count_values(&mut stream, &json!(1), Duration::from_secs(30)).await;
    let deliveries = deliveries + late;

    let executions = fixture.executions.load(Ordering::SeqCst);
    let usable = usable_after(&client).await;
    client.close().await;
    Outcome {
        result: if deliveries > 0 {
            "value".to_owned()
        } else {
            "missing".to_owned()
        },
        right_value: deliveries > 0,
        executions,
        deliveries: Some(deliveries),
        usable_after: usable,
    }
}

fn render(results: &[(Op, Fault, Outcome)]) -> String {
    let mut table = String::new();
    let _ = write!(table, "| operation \\ fault |");
    for fault in Fault::ALL {
        let _ = write!(table, " {} |", fault.name());
    }
    table.push('\n');
    table.push_str("|---|");
    for _ in Fault::ALL {
        table.push_str("---|");
    }
    table.push('\n');
    for op in Op::ALL {
        let _ = write!(table, "| {} |", op.name());
        for fault in Fault::ALL {
            let outcome = results
                .iter()
                .find(|(o, f, _)| *o == op && *f == fault)
                .map_or_else(|| "-".to_owned(), |(_, _, outcome)| outcome.cell());
            let _ = write!(table, " {outcome} |");
        }
        table.push('\n');
    }
    table
}

#[tokio::test(start_paused = true)]
async fn fault_matrix() {
    let mut results = Vec::new();
    for op in Op::ALL {
        for fault in Fault::ALL {
            let outcome = match op {
                Op::Stream => run_stream_case(fault).await,
                Op::CallStream => run_call_stream_case(fault).await,
                _ => run_request_case(op, fault).await,
            };
            results.push((op, fault, outcome));
        }
    }

    println!("\nFault matrix: {} cases", results.len());
    println!("cell = outcome, xN = handler executions on the server, dN = deliveries of the change\n");
    println!("{}", render(&results));

    for (op, fault, outcome) in &results {
        let cell = format!("{} under {}", op.name(), fault.name());
        assert_ne!(outcome.result, "hang", "{cell}: the call never resolved");
        assert!(outcome.right_value, "{cell}: wrong or missing value: {outcome:?}");
        assert!(
            outcome.usable_after,
            "{cell}: the client did not answer a later read"
        );
        if op.is_modification() {
            assert!(
                outcome.executions <= 1,
                "{cell}: the server ran the modification {} times",
                outcome.executions
            );
        }
        if let Some(deliveries) = outcome.deliveries {
            // The stream row's change always happens. A call request changes the callee's
            // stream only when the server ran it.
            let expected = if *op == Op::CallStream {
                outcome.executions.min(1)
            } else {
                1
            };
            assert_eq!(
                deliveries, expected,
                "{cell}: the change was delivered {deliveries} times"
            );
        }
        if *fault == Fault::ResponseDelayed && *op != Op::Stream {
            assert_eq!(outcome.result, "error:Timeout", "{cell}: expected a timeout");
        }
    }
}
