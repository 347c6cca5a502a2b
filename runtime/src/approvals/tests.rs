use super::*;
use crate::policy::ApprovalRule;

const T0: u64 = 1_800_000_000_000;

fn parked(seed: u8, client: &str, count: u32, groups: &[&str]) -> Parked {
    let request = Request {
        reason: Some("OPS-1 test".into()),
        ..Request::new(
            &mut rand_core::OsRng,
            T0,
            "web",
            Some("ops"),
            "restart-app",
            vec!["web".into()],
        )
    };
    let request = Request {
        id: RequestId::from_bytes([seed; 16]),
        ..request
    };
    Parked {
        request,
        client: client.into(),
        key: PublicKey::from_bytes([seed; 32]),
        groups: vec!["operators".into()],
        cluster: "ops".into(),
        module_digest: "sha256:00".into(),
        policy_revision: "rev".into(),
        masked_args: vec!["web".into()],
        grant: Grant {
            approvals: Some(ApprovalRule {
                count,
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ttl_s: 900,
            }),
            ..Grant::default()
        },
        transport: "quic".into(),
        source_ip: None,
        created_ms: T0,
        expires_ms: T0 + 900_000,
        approvals: Vec::new(),
        state: State::Waiting,
    }
}

fn security() -> Vec<String> {
    vec!["security".into()]
}

#[test]
fn two_approvers_from_the_group_run_it_once_each_counting_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(dir.path(), T0).expect("open");
    let p = parked(1, "olga", 2, &["security"]);
    let id = p.request.id;
    let note = store.park(p).expect("park");
    assert_eq!(
        (note.approvals, note.required, note.expires_at_ms),
        (0, 2, T0 + 900_000)
    );

    // Never the requester, never someone outside the groups.
    assert!(matches!(
        store.approve(&id, "olga", &security(), T0 + 1),
        Err(ApprovalError::OwnRequest(ref i)) if *i == id.to_string()
    ));
    assert!(matches!(
        store.approve(&id, "mallory", &["operators".into()], T0 + 1),
        Err(ApprovalError::NotAnApprover(..))
    ));
    assert!(store.approvable("mallory", &["operators".into()]).is_empty());
    assert!(store.approvable("olga", &security()).is_empty(), "not one's own");
    assert_eq!(store.approvable("sam", &security()).len(), 1);

    let Ok(Approved::Waiting(first)) = store.approve(&id, "sam", &security(), T0 + 2) else {
        panic!("one of two approvals");
    };
    assert_eq!(first.note().approvals, 1);
    // The same approver counts once.
    assert!(matches!(
        store.approve(&id, "sam", &security(), T0 + 3),
        Err(ApprovalError::AlreadyApproved(_, 1, 2))
    ));
    let Ok(Approved::Run(run)) = store.approve(&id, "tess", &security(), T0 + 4) else {
        panic!("the second approval runs it");
    };
    assert_eq!(run.state, State::Running { since_ms: T0 + 4 });
    assert_eq!(
        run.approvals
            .iter()
            .map(|a| a.client.as_str())
            .collect::<Vec<_>>(),
        ["sam", "tess"]
    );
    // Running: nobody approves or rejects it any more.
    assert!(matches!(
        store.approve(&id, "uma", &security(), T0 + 5),
        Err(ApprovalError::NotWaiting(..))
    ));
    assert!(matches!(
        store.reject(&id, "uma", &security(), None, T0 + 5),
        Err(ApprovalError::NotWaiting(..))
    ));
}

#[test]
fn every_step_is_on_disk_and_a_run_cut_off_is_never_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(dir.path(), T0).expect("open");
    let waiting = parked(1, "olga", 1, &[]);
    let running = parked(2, "olga", 1, &[]);
    let (w, r) = (waiting.request.id, running.request.id);
    store.park(waiting).expect("park");
    store.park(running).expect("park");
    store.approve(&r, "sam", &[], T0 + 1).expect("approve");
    drop(store);

    let (store, opened) = Store::open(dir.path(), T0 + 10).expect("reopen");
    assert_eq!(store.get(&w).expect("kept").state, State::Waiting);
    assert_eq!(opened.interrupted.len(), 1);
    assert_eq!(
        store.get(&r).expect("kept").state,
        State::Interrupted { at_ms: T0 + 10 }
    );
    // Still interrupted after another restart; approving it again does nothing.
    drop(store);
    let (store, opened) = Store::open(dir.path(), T0 + 20).expect("reopen");
    assert!(opened.interrupted.is_empty());
    assert!(matches!(
        store.approve(&r, "tess", &[], T0 + 21),
        Err(ApprovalError::NotWaiting(..))
    ));
    let mode = std::fs::metadata(dir.path().join(format!("{w}.json")))
        .expect("file")
        .permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
}

#[test]
fn unapproved_requests_expire_and_finished_ones_are_forgotten_a_day_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(dir.path(), T0).expect("open");
    let p = parked(1, "olga", 1, &[]);
    let id = p.request.id;
    store.park(p).expect("park");
    let (expired, errors) = store.reap(T0 + 899_999);
    assert!(expired.is_empty() && errors.is_empty());
    // Past its time it cannot be approved, even before the reaper comes by.
    assert!(matches!(
        store.approve(&id, "sam", &[], T0 + 900_000),
        Err(ApprovalError::NotWaiting(..))
    ));
    let (expired, _) = store.reap(T0 + 900_000);
    assert_eq!(expired.len(), 1);
    assert_eq!(
        store.get(&id).expect("kept").state,
        State::Expired { at_ms: T0 + 900_000 }
    );
    store.reap(T0 + 900_000 + KEEP_FINISHED_MS - 1);
    assert!(store.get(&id).is_some());
    store.reap(T0 + 900_000 + KEEP_FINISHED_MS);
    assert!(store.get(&id).is_none());
    assert!(!dir.path().join(format!("{id}.json")).exists());
}

#[test]
fn the_requester_may_withdraw_and_an_approver_reject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(dir.path(), T0).expect("open");
    let a = parked(1, "olga", 1, &["security"]);
    let b = parked(2, "olga", 1, &["security"]);
    let (a, b) = (store.park(a).expect("park").id, store.park(b).expect("park").id);
    let withdrawn = store
        .reject(&a, "olga", &[], Some("wrong host".into()), T0 + 1)
        .expect("withdraw");
    assert!(matches!(withdrawn.state, State::Rejected { ref by, .. } if by == "olga"));
    assert!(matches!(
        store.reject(&b, "mallory", &[], None, T0 + 1),
        Err(ApprovalError::NotAnApprover(..))
    ));
    store
        .reject(&b, "sam", &security(), None, T0 + 2)
        .expect("reject");
    assert!(matches!(
        store.approve(&b, "tess", &security(), T0 + 3),
        Err(ApprovalError::NotWaiting(..))
    ));
}

#[test]
fn ids_by_prefix_and_bounds_on_what_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(dir.path(), T0).expect("open");
    for seed in 0..u8::try_from(MAX_WAITING_PER_CLIENT).expect("small") {
        store.park(parked(seed, "olga", 1, &[])).expect("park");
    }
    assert!(matches!(
        store.park(parked(200, "olga", 1, &[])),
        Err(ApprovalError::Full(_))
    ));
    store
        .park(parked(201, "sam", 1, &[]))
        .expect("another client has its own share");

    let all = |_: &Parked| true;
    let one = RequestId::from_bytes([1; 16]);
    assert_eq!(store.find("01010101", all).ok(), Some(one));
    assert_eq!(store.find(&one.to_string().to_uppercase(), all).ok(), Some(one));
    assert!(matches!(
        store.find("0101010", all),
        Err(ApprovalError::ShortId(_))
    ));
    assert!(matches!(
        store.find("0101010x", all),
        Err(ApprovalError::ShortId(_))
    ));
    assert!(matches!(
        store.find("ffffffff", all),
        Err(ApprovalError::NotFound(_))
    ));
    assert!(matches!(
        store.find("01010101", |_| false),
        Err(ApprovalError::NotFound(_))
    ));
    store.park(parked(0x10, "sam", 1, &[])).expect("park");
    // Two ids that share their first eight hex characters: that prefix names neither.
    let mut p = parked(0x11, "sam", 1, &[]);
    p.request.id = RequestId::from_bytes([0x10, 0x10, 0x10, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    store.park(p).expect("park");
    assert!(matches!(
        store.find("10101010", all),
        Err(ApprovalError::Ambiguous(_))
    ));
}

#[test]
fn an_unreadable_record_is_set_aside_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("0123.json"), b"{not json").expect("write");
    let good = parked(3, "olga", 1, &[]);
    let id = good.request.id;
    // A valid record under another request's name is not trusted either.
    std::fs::write(
        dir.path()
            .join(format!("{}.json", RequestId::from_bytes([4; 16]))),
        serde_json::to_vec(&good).expect("json"),
    )
    .expect("write");
    let (store, opened) = Store::open(dir.path(), T0).expect("open");
    assert_eq!(opened.unreadable.len(), 2, "{:?}", opened.unreadable);
    assert!(dir.path().join("0123.json.bad").exists());
    assert!(store.get(&id).is_none());
    assert_eq!(store.waiting(), 0);
}
