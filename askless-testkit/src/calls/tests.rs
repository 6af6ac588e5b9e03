//! Unit tests of the call state machine, following the recorded accepted, rejected and
//! cancelled calls of the reference server.

use askless_protocol::{AsklessErrorCode, ErrorBody, UserId, routes};
use serde_json::{Value, json};

use super::{CallEffect, CallSignalling, is_call_route};

const LFAC: &str = routes::LISTEN_FOR_A_CALL;

fn user(id: i64) -> UserId {
    UserId::from(id)
}

fn offer() -> Value {
    json!({"sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "type": "offer"})
}

fn answer() -> Value {
    json!({"sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "type": "answer"})
}

fn remote(id: i64) -> Value {
    json!({"remoteUserId": id})
}

fn stop(id: i64) -> CallEffect {
    CallEffect::StopListeningAll {
        user: user(id),
        route: LFAC,
    }
}

fn respond(output: Value) -> CallEffect {
    CallEffect::Respond { output }
}

fn notify(route: &'static str, to: i64, where_remote: Option<i64>, value: Option<Value>) -> CallEffect {
    CallEffect::Notify {
        route,
        to_user: user(to),
        where_remote_user_id: where_remote.map(user),
        value,
    }
}

fn create(state: &mut CallSignalling, route: &str, by: i64, body: Value) -> Vec<CallEffect> {
    state
        .handle_create(route, &user(by), &body)
        .expect("a call CREATE route")
}

fn read(state: &CallSignalling, route: &str, by: i64, params: Value) -> Value {
    state
        .read(route, Some(&user(by)), &params)
        .expect("a call READ route")
}

/// Runs steps 1 to 4 shared by the three recorded calls: the callee listens for calls, the
/// caller opens its channel and requests, the callee opens its channel.
fn ring(state: &mut CallSignalling, caller: i64, callee: i64) {
    assert_eq!(
        read(state, routes::CALL_RECEIVE, callee, Value::Null),
        json!({"hasCallRequest": false})
    );
    assert_eq!(
        read(state, LFAC, caller, remote(callee)),
        json!({"remoteUserId": callee})
    );
    assert_eq!(
        state.on_listen_started(LFAC, Some(&user(caller)), &remote(callee)),
        vec![notify(
            LFAC,
            callee,
            None,
            Some(json!({"remoteUserIsConnected": true}))
        )]
    );

    let request = create(
        state,
        routes::CALL_REQUEST,
        caller,
        json!({"remoteUserId": callee, "sdp": offer(), "additionalData": {"videoCall": true}}),
    );
    assert_eq!(
        request,
        vec![
            respond(json!({"info": "You requested a call"})),
            notify(routes::CALL_RECEIVE, callee, None, None),
        ]
    );
    assert_eq!(
        read(state, routes::CALL_RECEIVE, callee, Value::Null),
        json!({"hasCallRequest": true, "remoteUserId": caller, "sdp": offer(), "additionalData": {"videoCall": true}})
    );

    assert_eq!(
        read(state, LFAC, callee, remote(caller)),
        json!({"sdp": offer(), "additionalData": {"videoCall": true}, "remoteUserId": caller})
    );
    assert_eq!(
        state.on_listen_started(LFAC, Some(&user(callee)), &remote(caller)),
        vec![notify(
            LFAC,
            caller,
            None,
            Some(json!({"remoteUserIsConnected": true}))
        )]
    );
}

#[test]
fn accepted_call_follows_recorded_order() {
    let mut state = CallSignalling::new();
    ring(&mut state, 1, 2);

    assert_eq!(
        read(&state, routes::ICE_CANDIDATE_LIST, 2, remote(1)),
        json!({"remoteUserId": 1, "iceCandidateList": []})
    );

    let accept = create(
        &mut state,
        routes::CALL_RESPONSE,
        2,
        json!({"callAccepted": true, "remoteUserId": 1, "sdp": answer(), "additionalData": {}}),
    );
    assert_eq!(
        accept,
        vec![
            respond(json!({"info": "You (user 2) accepted the call of user 1"})),
            notify(LFAC, 1, None, None),
        ]
    );
    assert_eq!(
        read(&state, LFAC, 1, remote(2)),
        json!({"callAccepted": true, "sdp": answer(), "additionalData": {}, "remoteUserId": 2})
    );
    assert_eq!(state.pending_callers(&user(2)), Some(&[][..]));

    let candidates = json!([{"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "id": "0", "label": 0}]);
    let ice = create(
        &mut state,
        routes::ICE_CANDIDATE_LIST,
        1,
        json!({"remoteUserId": 2, "iceCandidateList": candidates}),
    );
    assert_eq!(
        ice,
        vec![
            respond(json!({})),
            notify(routes::ICE_CANDIDATE_LIST, 2, None, None)
        ]
    );
    let ice_value = read(&state, routes::ICE_CANDIDATE_LIST, 2, remote(1));
    assert_eq!(
        ice_value,
        json!({"remoteUserId": 1, "iceCandidateList": candidates})
    );
    let acknowledged =
        state.on_value_acknowledged(routes::ICE_CANDIDATE_LIST, Some(&user(2)), &remote(1), &ice_value);
    assert!(acknowledged.is_empty());
    assert_eq!(
        read(&state, routes::ICE_CANDIDATE_LIST, 2, remote(1)),
        json!({"remoteUserId": 1, "iceCandidateList": []}),
        "an acknowledged ICE list is deleted"
    );

    let close = create(
        &mut state,
        routes::CALL_CLOSE,
        1,
        json!({"remoteUserId": 2, "callClosed": true}),
    );
    assert_eq!(
        close,
        vec![
            stop(1),
            stop(2),
            respond(json!({})),
            notify(LFAC, 2, Some(1), Some(json!({"callClosed": true}))),
        ]
    );
    assert!(state.signal(&user(2), &user(1)).is_none());

    // The caller's ping omits its channel, so the callee learns that the caller is gone.
    let caller_gone = state.on_listener_removed(LFAC, Some(&user(1)), &remote(2));
    assert_eq!(
        caller_gone,
        vec![notify(
            LFAC,
            2,
            None,
            Some(json!({"remoteUserIsConnected": false}))
        )]
    );
    assert_eq!(state.alone(), &[user(2)]);

    // The callee's ping omits its channel: it is alone, so the call is cleaned up again.
    let callee_gone = state.on_listener_removed(LFAC, Some(&user(2)), &remote(1));
    assert_eq!(callee_gone, vec![stop(2), stop(1)]);
    assert!(state.alone().is_empty());
}

#[test]
fn rejected_call_cleans_up_on_acknowledgement() {
    let mut state = CallSignalling::new();
    ring(&mut state, 3, 4);

    let reject = create(
        &mut state,
        routes::CALL_RESPONSE,
        4,
        json!({"remoteUserId": 3, "callAccepted": false, "additionalData": {"reason": "busy"}}),
    );
    assert_eq!(
        reject,
        vec![
            respond(json!({"info": "You (user 4) rejected the call of user 3"})),
            notify(LFAC, 3, None, None),
        ]
    );
    let rejection = read(&state, LFAC, 3, remote(4));
    assert_eq!(
        rejection,
        json!({"callClosed": true, "callAccepted": false, "additionalData": {"reason": "busy"}, "remoteUserId": 4})
    );

    let acknowledged = state.on_value_acknowledged(LFAC, Some(&user(3)), &remote(4), &rejection);
    assert_eq!(
        acknowledged,
        vec![stop(3), stop(4)],
        "caller's stop first, then callee's"
    );

    assert_eq!(
        state.on_listener_removed(LFAC, Some(&user(3)), &remote(4)),
        vec![notify(
            LFAC,
            4,
            None,
            Some(json!({"remoteUserIsConnected": false}))
        )]
    );
    assert_eq!(
        state.on_listener_removed(LFAC, Some(&user(4)), &remote(3)),
        vec![stop(4), stop(3)]
    );
}

#[test]
fn rejection_without_additional_data_gets_empty_object() {
    let mut state = CallSignalling::new();
    ring(&mut state, 3, 4);
    create(
        &mut state,
        routes::CALL_RESPONSE,
        4,
        json!({"remoteUserId": 3, "callAccepted": false}),
    );
    assert_eq!(
        read(&state, LFAC, 3, remote(4)),
        json!({"callClosed": true, "callAccepted": false, "additionalData": {}, "remoteUserId": 4})
    );
}

#[test]
fn cancelled_call_sends_four_stops_then_values() {
    let mut state = CallSignalling::new();
    ring(&mut state, 5, 6);

    // The caller's ping omits its channel while the request is pending.
    let cancel = state.on_listener_removed(LFAC, Some(&user(5)), &remote(6));
    assert_eq!(
        cancel,
        vec![
            stop(5),
            stop(6),
            stop(6),
            stop(5),
            notify(LFAC, 6, None, Some(json!({"remoteUserIsConnected": false}))),
            notify(
                LFAC,
                6,
                Some(5),
                Some(json!({"callClosed": true, "callAccepted": false}))
            ),
            notify(
                LFAC,
                5,
                Some(6),
                Some(json!({"callClosed": true, "callAccepted": false}))
            ),
        ]
    );
    assert!(state.alone().is_empty());
    assert_eq!(state.pending_callers(&user(6)), Some(&[][..]));

    // The callee acknowledges the cancellation value: one more stop for its channel.
    let acknowledged = state.on_value_acknowledged(
        LFAC,
        Some(&user(6)),
        &remote(5),
        &json!({"callClosed": true, "callAccepted": false}),
    );
    assert_eq!(acknowledged, vec![stop(6), stop(5)]);

    // A presence value does not trigger a clean-up.
    let presence = state.on_value_acknowledged(
        LFAC,
        Some(&user(6)),
        &remote(5),
        &json!({"remoteUserIsConnected": false}),
    );
    assert!(presence.is_empty());

    // The callee's later ping omitting its channel puts the caller in alone, nothing is sent
    // to a listener (the caller has none left).
    assert_eq!(
        state.on_listener_removed(LFAC, Some(&user(6)), &remote(5)),
        vec![notify(
            LFAC,
            5,
            None,
            Some(json!({"remoteUserIsConnected": false}))
        )]
    );

    assert_eq!(
        read(&state, routes::CALL_RECEIVE, 6, Value::Null),
        json!({"hasCallRequest": false})
    );
}

#[test]
fn accept_without_any_request_is_not_available() {
    let mut state = CallSignalling::new();
    let effects = create(
        &mut state,
        routes::CALL_RESPONSE,
        2,
        json!({"callAccepted": true, "remoteUserId": 1, "sdp": answer(), "additionalData": {}}),
    );
    assert_eq!(
        effects,
        vec![CallEffect::Fail {
            error: ErrorBody::new(
                AsklessErrorCode::CallNotAvailableAnymore,
                "The call is no longer available"
            ),
        }]
    );
    assert!(state.signal(&user(2), &user(1)).is_none());
}

#[test]
fn late_accept_after_cleanup_still_succeeds() {
    let mut state = CallSignalling::new();
    ring(&mut state, 5, 6);
    state.on_listener_removed(LFAC, Some(&user(5)), &remote(6));

    // The callee's list exists (empty), so a late accept is stored and poisons the next call.
    let late = create(
        &mut state,
        routes::CALL_RESPONSE,
        6,
        json!({"callAccepted": true, "remoteUserId": 5, "sdp": answer(), "additionalData": {}}),
    );
    assert_eq!(
        late[0],
        respond(json!({"info": "You (user 6) accepted the call of user 5"}))
    );
    assert_eq!(
        read(&state, LFAC, 5, remote(6)),
        json!({"callAccepted": true, "sdp": answer(), "additionalData": {}, "remoteUserId": 6})
    );
}

#[test]
fn response_without_remote_user_gets_no_response() {
    let mut state = CallSignalling::new();
    let missing = create(&mut state, routes::CALL_RESPONSE, 2, json!({}));
    assert!(matches!(missing.as_slice(), [CallEffect::NoResponse { .. }]));

    let own_id = create(
        &mut state,
        routes::CALL_RESPONSE,
        2,
        json!({"remoteUserId": "2", "callAccepted": false}),
    );
    assert!(matches!(own_id.as_slice(), [CallEffect::NoResponse { .. }]));

    let null_body = create(&mut state, routes::CALL_REQUEST, 2, Value::Null);
    assert!(matches!(null_body.as_slice(), [CallEffect::NoResponse { .. }]));
}

#[test]
fn keys_are_loose_membership_is_strict() {
    let mut state = CallSignalling::new();
    create(
        &mut state,
        routes::CALL_REQUEST,
        1,
        json!({"remoteUserId": "2", "sdp": offer(), "additionalData": {}}),
    );
    // The numeric id 2 reads the list stored under "2".
    assert_eq!(
        read(&state, routes::CALL_RECEIVE, 2, Value::Null)["remoteUserId"],
        json!(1)
    );

    // A string "1" does not match the numeric caller 1 in the pending list.
    let wrong_type = state
        .handle_create(
            routes::CALL_RESPONSE,
            &UserId::from("2"),
            &json!({"remoteUserId": "1", "callAccepted": false}),
        )
        .expect("a call route");
    assert!(matches!(wrong_type[0], CallEffect::Respond { .. }));
    assert_eq!(state.pending_callers(&user(2)), Some(&[user(1)][..]));
}

#[test]
fn string_ids_render_without_quotes() {
    let mut state = CallSignalling::new();
    let alice = UserId::from("alice");
    state.handle_create(
        routes::CALL_REQUEST,
        &alice,
        &json!({"remoteUserId": "bob", "sdp": offer()}),
    );
    let effects = state
        .handle_create(
            routes::CALL_RESPONSE,
            &UserId::from("bob"),
            &json!({"remoteUserId": "alice", "callAccepted": true, "sdp": answer()}),
        )
        .expect("a call route");
    assert_eq!(
        effects[0],
        respond(json!({"info": "You (user bob) accepted the call of user alice"}))
    );
}

#[test]
fn unauthenticated_read_has_no_call() {
    let state = CallSignalling::new();
    assert_eq!(
        state.read(routes::CALL_RECEIVE, None, &Value::Null),
        Some(json!({"hasCallRequest": false}))
    );
    assert_eq!(
        state.read(LFAC, None, &remote(3)),
        Some(json!({"remoteUserId": 3}))
    );
    assert_eq!(
        state.read(LFAC, Some(&user(1)), &Value::Null),
        None,
        "null params make the handler throw"
    );
    assert_eq!(state.read("product/all", None, &Value::Null), None);
}

#[test]
fn repeated_request_queues_caller_twice() {
    let mut state = CallSignalling::new();
    for _ in 0..2 {
        create(
            &mut state,
            routes::CALL_REQUEST,
            1,
            json!({"remoteUserId": 2, "sdp": offer(), "additionalData": {}}),
        );
    }
    assert_eq!(state.pending_callers(&user(2)), Some(&[user(1), user(1)][..]));
}

#[test]
fn peer_reappearing_leaves_alone_once() {
    let mut state = CallSignalling::new();
    state.on_listener_removed(LFAC, Some(&user(1)), &remote(2));
    state.on_listener_removed(LFAC, Some(&user(3)), &remote(2));
    assert_eq!(state.alone(), &[user(2), user(2)]);
    state.on_listen_started(LFAC, Some(&user(1)), &remote(2));
    assert_eq!(state.alone(), &[user(2)]);
}

#[test]
fn call_route_names_are_recognised() {
    assert!(is_call_route(routes::CALL_CLOSE));
    assert!(is_call_route(routes::CALL_RECEIVE));
    assert!(!is_call_route(routes::AUTHENTICATION));
    let mut state = CallSignalling::new();
    assert!(
        state
            .handle_create(routes::CALL_RECEIVE, &user(1), &json!({}))
            .is_none()
    );
}

#[test]
fn request_stores_whole_body() {
    let mut state = CallSignalling::new();
    create(
        &mut state,
        routes::CALL_REQUEST,
        1,
        json!({"remoteUserId": 2, "sdp": offer(), "additionalData": {}, "extra": [1]}),
    );
    assert_eq!(
        read(&state, routes::CALL_RECEIVE, 2, Value::Null),
        json!({"hasCallRequest": true, "remoteUserId": 1, "sdp": offer(), "additionalData": {}, "extra": [1]})
    );
    assert_eq!(
        read(&state, LFAC, 2, remote(1)),
        json!({"sdp": offer(), "additionalData": {}, "extra": [1], "remoteUserId": 1})
    );
}

#[test]
fn accept_stores_whole_body() {
    let mut state = CallSignalling::new();
    ring(&mut state, 1, 2);
    create(
        &mut state,
        routes::CALL_RESPONSE,
        2,
        json!({"callAccepted": 1, "remoteUserId": 1, "sdp": answer(), "note": "hi"}),
    );
    assert_eq!(
        read(&state, LFAC, 1, remote(2)),
        json!({"callAccepted": 1, "sdp": answer(), "note": "hi", "remoteUserId": 2})
    );
}

#[test]
fn rejection_keeps_falsy_additional_data() {
    let mut state = CallSignalling::new();
    ring(&mut state, 3, 4);
    create(
        &mut state,
        routes::CALL_RESPONSE,
        4,
        json!({"remoteUserId": 3, "callAccepted": false, "additionalData": ""}),
    );
    assert_eq!(
        read(&state, LFAC, 3, remote(4)),
        json!({"callClosed": true, "callAccepted": false, "additionalData": "", "remoteUserId": 4})
    );
}

#[test]
fn creates_without_remote_user_succeed() {
    let mut state = CallSignalling::new();
    assert_eq!(
        create(&mut state, routes::CALL_REQUEST, 1, json!({"sdp": offer()})),
        vec![respond(json!({"info": "You requested a call"}))]
    );
    // The call is queued under JavaScript's `undefined` key, which is the key of a read
    // without user id.
    assert_eq!(
        state.read(routes::CALL_RECEIVE, None, &Value::Null),
        Some(json!({"hasCallRequest": true, "remoteUserId": 1, "sdp": offer()}))
    );
    assert_eq!(
        create(
            &mut state,
            routes::ICE_CANDIDATE_LIST,
            1,
            json!({"iceCandidateList": []})
        ),
        vec![respond(json!({}))]
    );
    assert_eq!(
        create(&mut state, routes::CALL_CLOSE, 1, json!({"callClosed": true})),
        vec![stop(1), respond(json!({}))]
    );
}

#[test]
fn creates_with_odd_remote_get_no_response() {
    let mut state = CallSignalling::new();
    for route in [
        routes::CALL_REQUEST,
        routes::ICE_CANDIDATE_LIST,
        routes::CALL_CLOSE,
    ] {
        let effects = create(&mut state, route, 1, json!({"remoteUserId": true}));
        assert!(
            matches!(effects.as_slice(), [CallEffect::NoResponse { .. }]),
            "{route}: {effects:?}"
        );
    }
}

#[test]
fn clean_up_deletes_list_equal_to_peer() {
    let mut state = CallSignalling::new();
    for _ in 0..2 {
        create(
            &mut state,
            routes::CALL_REQUEST,
            1,
            json!({"remoteUserId": 2, "sdp": offer()}),
        );
    }
    create(&mut state, routes::CALL_CLOSE, 1, json!({"remoteUserId": 2}));
    // One occurrence is removed; the list `[1]` then equals 1 under `==` and is deleted.
    assert_eq!(state.pending_callers(&user(2)), None);
}

#[test]
fn receive_without_stored_request_sends_nothing() {
    let mut state = CallSignalling::new();
    for _ in 0..3 {
        create(
            &mut state,
            routes::CALL_REQUEST,
            1,
            json!({"remoteUserId": 2, "sdp": offer()}),
        );
    }
    create(&mut state, routes::CALL_CLOSE, 1, json!({"remoteUserId": 2}));
    assert_eq!(state.pending_callers(&user(2)), Some(&[user(1), user(1)][..]));
    assert_eq!(
        state.read(routes::CALL_RECEIVE, Some(&user(2)), &Value::Null),
        None,
        "the reference server's handler throws when the first caller's request is gone"
    );
}

#[test]
fn zero_call_accepted_counts_as_false() {
    let mut state = CallSignalling::new();
    ring(&mut state, 3, 4);
    let effects = state.on_value_acknowledged(LFAC, Some(&user(3)), &remote(4), &json!({"callAccepted": 0}));
    assert_eq!(effects, vec![stop(3), stop(4)]);
    let untouched =
        state.on_value_acknowledged(LFAC, Some(&user(3)), &remote(4), &json!({"callAccepted": null}));
    assert!(untouched.is_empty());
}
