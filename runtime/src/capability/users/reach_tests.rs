//! Tests of [`Reach`]: one per kind of account and group, then properties over generated
//! login.defs files, accounts, groups and grants.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::capability::users::Group;

const DEFS: LoginDefs = LoginDefs {
    uid_min: 1000,
    uid_max: 60000,
    gid_min: 1000,
    gid_max: 60000,
};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn grant(names: &[&str], groups: &[&str]) -> UsersGrant {
    UsersGrant {
        names: strings(names),
        groups: strings(groups),
        ..UsersGrant::default()
    }
}

/// An ordinary account: uid and own group 1001, bash, in `groups` (name, gid).
fn account(name: &str, groups: &[(&str, u32)]) -> Account {
    Account {
        name: name.into(),
        uid: 1001,
        gid: 1001,
        primary_group: Some(name.into()),
        home: PathBuf::from("/home").join(name),
        shell: "/bin/bash".into(),
        login_shell: true,
        groups: groups
            .iter()
            .map(|(name, gid)| Group {
                name: (*name).into(),
                gid: *gid,
            })
            .collect(),
        locked: false,
    }
}

fn user(name: &str) -> UserName {
    name.parse().expect("user name")
}

fn group(name: &str) -> super::super::GroupName {
    name.parse().expect("group name")
}

#[test]
fn an_ordinary_account_in_a_granted_group_is_reached() {
    let g = grant(&["dave"], &["developers"]);
    let reach = Reach::new(&g, DEFS, "olga");
    let dave = account("dave", &[("developers", 2000)]);
    assert_eq!(reach.system_kind(&dave), None);
    reach.account(&dave).expect("dave");
    Reach::new(&grant(&["*"], &["*"]), DEFS, "olga")
        .account(&dave)
        .expect("wildcards");
    assert_eq!(
        reach.account(&account("erin", &[("developers", 2000)])),
        Err(Refusal::NotNamed {
            name: "erin".into(),
            granted: strings(&["dave"])
        })
    );
    let err = reach
        .account(&account("dave", &[("operators", 2001)]))
        .expect_err("outside the grant's groups");
    assert_eq!(
        err.to_string(),
        "dave is a member of none of the grant's groups ([\"developers\"])"
    );
}

#[test]
fn a_primary_group_counts_as_membership() {
    let mut dave = account("dave", &[]);
    dave.gid = 2000;
    dave.primary_group = Some("developers".into());
    Reach::new(&grant(&["dave"], &["developers"]), DEFS, "olga")
        .account(&dave)
        .expect("primary group developers");
    dave.primary_group = None;
    assert!(
        Reach::new(&grant(&["dave"], &["*"]), DEFS, "olga")
            .account(&dave)
            .is_err(),
        "a gid without a group entry is membership of nothing"
    );
}

#[test]
fn every_kind_of_system_account_needs_system_accounts() {
    let any = grant(&["*"], &["*"]);
    let named = |name: &str| grant(&[name, "*"], &["*", "developers"]);
    let dev = |name: &str, edit: fn(&mut Account)| {
        let mut a = account(name, &[("developers", 2000)]);
        edit(&mut a);
        a
    };
    let cases: Vec<(Account, SystemKind)> = vec![
        (
            dev("root", |a| (a.uid, a.gid, a.groups) = (0, 0, vec![])),
            SystemKind::Root,
        ),
        (dev("toor", |a| a.uid = 0), SystemKind::Root),
        (dev("root", |a| a.uid = 1005), SystemKind::Root),
        (dev("daemon", |a| a.uid = 1), SystemKind::Uid(1)),
        (dev("postgres", |a| a.uid = 999), SystemKind::Uid(999)),
        (dev("nobody", |a| a.uid = 65534), SystemKind::Uid(65534)),
        (dev("big", |a| a.uid = 60001), SystemKind::Uid(60001)),
        (dev("svc", |a| a.login_shell = false), SystemKind::NoLoginShell),
        (dev("admin", |_| {}), SystemKind::ReservedName),
        (dev("_chrony", |_| {}), SystemKind::ReservedName),
        (dev("systemd-oom", |_| {}), SystemKind::ReservedName),
        (
            dev("carl", |a| (a.gid, a.primary_group) = (100, Some("users".into()))),
            SystemKind::PrimaryGroup(100),
        ),
        (
            dev("zed", |a| (a.gid, a.primary_group) = (0, Some("root".into()))),
            SystemKind::PrimaryGroup(0),
        ),
        (
            dev("yan", |a| (a.gid, a.primary_group) = (65534, None)),
            SystemKind::PrimaryGroup(65534),
        ),
        (
            dev("xia", |a| {
                (a.gid, a.primary_group) = (3000, Some("docker".into()))
            }),
            SystemKind::PrimaryGroup(3000),
        ),
    ];
    for (a, kind) in cases {
        let reach = Reach::new(&any, DEFS, "olga");
        assert_eq!(reach.system_kind(&a), Some(kind), "{}", a.name);
        for g in [&any, &named(&a.name)] {
            assert_eq!(
                Reach::new(g, DEFS, "olga").account(&a),
                Err(Refusal::SystemAccount {
                    name: a.name.clone(),
                    kind
                }),
                "{}",
                a.name
            );
        }
        // Self service never reaches one either.
        let own = UsersGrant {
            self_service: true,
            ..UsersGrant::default()
        };
        assert!(Reach::new(&own, DEFS, &a.name).account(&a).is_err(), "{}", a.name);
        // system_accounts does, when the account is in a group the grant reaches.
        let explicit = UsersGrant {
            groups: strings(&["developers"]),
            system_accounts: vec![a.name.clone()],
            ..UsersGrant::default()
        };
        let reached = Reach::new(&explicit, DEFS, "olga").account(&a);
        assert_eq!(
            reached.is_ok(),
            a.groups.iter().any(|g| g.name == "developers"),
            "{}: {reached:?}",
            a.name
        );
        let star = UsersGrant {
            system_accounts: strings(&["*"]),
            ..explicit.clone()
        };
        assert!(
            Reach::new(&star, DEFS, "olga").account(&a).is_err(),
            "\"*\" names no system account"
        );
    }
    let err = Reach::new(&any, DEFS, "olga")
        .account(&account("admin", &[("developers", 2000)]))
        .expect_err("reserved");
    assert_eq!(
        err.to_string(),
        "admin is a system account (a reserved name); only a grant naming it in system_accounts reaches it"
    );
}

#[test]
fn the_ranges_come_from_login_defs() {
    let defs = LoginDefs::parse(
        "UID_MIN 5000\nUID_MAX 6000\nGID_MIN 500\n",
        Path::new("login.defs"),
    )
    .expect("defs");
    let g = grant(&["*"], &["*"]);
    let reach = Reach::new(&g, defs, "olga");
    let mut a = account("dave", &[("developers", 2000)]);
    assert_eq!(
        reach.system_kind(&a),
        Some(SystemKind::Uid(1001)),
        "below UID_MIN 5000"
    );
    a.uid = 6001;
    assert_eq!(
        reach.system_kind(&a),
        Some(SystemKind::Uid(6001)),
        "above UID_MAX 6000"
    );
    a.uid = 5000;
    a.gid = 600;
    a.primary_group = Some("dave".into());
    reach.account(&a).expect("gid 600 is ordinary with GID_MIN 500");
}

#[test]
fn members_of_a_system_group_are_out_of_reach_unless_it_is_named() {
    // An administrator who is also a developer.
    let ada = account("ada", &[("sudo", 27), ("developers", 2000)]);
    let g = grant(&["ada"], &["developers", "sudo"]);
    assert_eq!(
        Reach::new(&g, DEFS, "olga").account(&ada),
        Err(Refusal::PrivilegedMember {
            name: "ada".into(),
            group: "sudo".into()
        })
    );
    // Reserved names count even with an ordinary gid.
    let wheel = account("bob", &[("wheel", 3000), ("developers", 2000)]);
    assert!(Reach::new(&g, DEFS, "olga").account(&wheel).is_err());
    let g = UsersGrant {
        system_groups: strings(&["sudo"]),
        ..g
    };
    Reach::new(&g, DEFS, "olga").account(&ada).expect("sudo named");
    // Self service is about the caller's own account: an administrator may manage their keys.
    let own = UsersGrant {
        self_service: true,
        ..UsersGrant::default()
    };
    Reach::new(&own, DEFS, "ada").account(&ada).expect("own account");
}

#[test]
fn self_service_is_the_callers_own_ordinary_account_only() {
    let own = UsersGrant {
        self_service: true,
        ..UsersGrant::default()
    };
    let dave = account("dave", &[]);
    Reach::new(&own, DEFS, "dave").account(&dave).expect("own");
    assert!(
        Reach::new(&own, DEFS, "erin").account(&dave).is_err(),
        "another client"
    );
    let off = UsersGrant::default();
    assert!(
        Reach::new(&off, DEFS, "dave").account(&dave).is_err(),
        "no self service"
    );
    // A client name that is no account name never matches (no case folding, no tricks).
    for client in ["Dave", "dave ", "*", ""] {
        assert!(
            Reach::new(&own, DEFS, client).account(&dave).is_err(),
            "{client:?}"
        );
    }
    assert!(
        Reach::new(&own, DEFS, "dave").new_account(&user("dave")).is_err(),
        "no creation"
    );
}

#[test]
fn new_accounts_need_a_granted_unreserved_name() {
    let g = grant(&["*"], &[]);
    let reach = Reach::new(&g, DEFS, "olga");
    reach.new_account(&user("frank")).expect("frank");
    for name in [
        "root",
        "toor",
        "admin",
        "wheel",
        "sudo",
        "docker",
        "daemon",
        "www-data",
        "nobody",
        "sesame",
        "_apt",
        "systemd-coredump",
    ] {
        assert_eq!(
            reach.new_account(&user(name)),
            Err(Refusal::SystemAccount {
                name: name.into(),
                kind: SystemKind::ReservedName
            }),
            "{name}"
        );
    }
    assert!(
        Reach::new(&grant(&["frank"], &[]), DEFS, "olga")
            .new_account(&user("grace"))
            .is_err()
    );
    let explicit = UsersGrant {
        system_accounts: strings(&["_backup"]),
        ..UsersGrant::default()
    };
    Reach::new(&explicit, DEFS, "olga")
        .new_account(&user("_backup"))
        .expect("named in system_accounts");
}

#[test]
fn groups_by_kind() {
    let g = grant(&[], &["developers", "sudo", "root", "*"]);
    let reach = Reach::new(&g, DEFS, "olga");
    reach.group(&group("developers"), Some(2000)).expect("named");
    reach.group(&group("ops"), Some(2001)).expect("*");
    reach
        .group(&group("ops"), None)
        .expect("* (a group yet to exist: the service says so)");
    for (name, gid) in [
        ("sudo", Some(27)),
        ("root", Some(0)),
        ("root", None),
        ("zero", Some(0)),
        ("nogroup", Some(65534)),
        ("high", Some(60001)),
        ("wheel", Some(3000)),
        ("admin", None),
        ("systemd-journal", Some(2002)),
    ] {
        assert_eq!(
            reach.group(&group(name), gid),
            Err(Refusal::SystemGroup { name: name.into() }),
            "{name}"
        );
    }
    let explicit = UsersGrant {
        system_groups: strings(&["sudo"]),
        ..UsersGrant::default()
    };
    Reach::new(&explicit, DEFS, "olga")
        .group(&group("sudo"), Some(27))
        .expect("named in system_groups");
    assert_eq!(
        Reach::new(&grant(&[], &["developers"]), DEFS, "olga").group(&group("ops"), Some(2001)),
        Err(Refusal::GroupNotGranted {
            name: "ops".into(),
            granted: strings(&["developers"])
        })
    );
}

// --- properties ------------------------------------------------------------------------------
//
// The generators aim at the boundaries: ids just inside and outside the login.defs ranges,
// names that are reserved or not, and grants drawn from the account's own name and groups (so
// that "named, in a granted group, but ..." cases come up often, not once in a thousand).

/// Account names: ordinary ones, root and reserved ones, and generated ones.
fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "root", "toor", "daemon", "bin", "www-data", "nobody", "admin", "sudo", "_apt",
            "systemd-x", "dave", "erin", "ada", "carl", "olga",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_][a-z0-9_-]{0,8}",
    ]
}

/// Group names, some of them privileged or reserved.
fn any_group_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "root", "sudo", "wheel", "adm", "docker", "users", "developers", "operators", "ops",
            "dave", "staff", "nogroup",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z][a-z0-9-]{0,8}",
    ]
}

/// Ids around the range `min..=max`: inside (most often), at and just past both ends, 0,
/// below, above, `nobody` and -2.
fn id_around(min: u32, max: u32) -> BoxedStrategy<u32> {
    prop_oneof![
        6 => min..=max,
        1 => Just(min),
        1 => Just(max),
        1 => Just(min - 1),
        1 => Just(max + 1),
        1 => Just(0u32),
        1 => 0..min,
        1 => (max + 1)..(u32::MAX - 1),
        1 => Just(65534u32),
    ]
    .boxed()
}

/// `UID_MIN`, `UID_MAX`, `GID_MIN`, `GID_MAX`.
fn any_ranges() -> impl Strategy<Value = (u32, u32, u32, u32)> {
    (1u32..5000, 0u32..70000, 1u32..5000, 0u32..70000)
        .prop_map(|(umin, uspan, gmin, gspan)| (umin, umin + uspan, gmin, gmin + gspan))
}

/// A login.defs text holding `ranges`, written the ways shadow reads: tabs or spaces, decimal,
/// octal or hex, quoted or not, with comments, other keys and an earlier definition of each
/// key that the later one overrides.
fn login_defs_text(ranges: (u32, u32, u32, u32)) -> impl Strategy<Value = String> {
    let (umin, umax, gmin, gmax) = ranges;
    let values = [
        ("UID_MIN", umin),
        ("UID_MAX", umax),
        ("GID_MIN", gmin),
        ("GID_MAX", gmax),
    ];
    prop::collection::vec((0u8..3, any::<bool>(), any::<bool>(), "[ \t]{1,3}"), 4).prop_map(move |styles| {
        let mut text = String::from("# login.defs\nMAIL_DIR /var/mail\n");
        for ((key, value), (base, quoted, repeat, blank)) in values.iter().zip(styles) {
            if repeat {
                text.push_str(&format!("{key}{blank}12345\n#{key} 1\n"));
            }
            let number = match base {
                0 => value.to_string(),
                1 => format!("0{value:o}"),
                _ => format!("0x{value:x}"),
            };
            if quoted {
                text.push_str(&format!("{blank}{key}{blank}\"{number}\"\n"));
            } else {
                text.push_str(&format!("{key}{blank}{number}{blank}\n"));
            }
        }
        text
    })
}

/// login.defs values, parsed from a generated file (and checked to read back as written).
fn any_login_defs() -> impl Strategy<Value = LoginDefs> {
    any_ranges().prop_flat_map(|ranges| {
        login_defs_text(ranges).prop_map(move |text| {
            let defs =
                LoginDefs::parse(&text, Path::new("login.defs")).unwrap_or_else(|e| panic!("{text}: {e}"));
            let (uid_min, uid_max, gid_min, gid_max) = ranges;
            assert_eq!(
                defs,
                LoginDefs {
                    uid_min,
                    uid_max,
                    gid_min,
                    gid_max
                },
                "{text}"
            );
            defs
        })
    })
}

fn any_account(defs: LoginDefs) -> impl Strategy<Value = Account> {
    let gid = || id_around(defs.gid_min, defs.gid_max);
    (
        any_name(),
        id_around(defs.uid_min, defs.uid_max),
        gid(),
        prop::option::weighted(0.9, any_group_name()),
        prop::bool::weighted(0.2),
        prop::collection::vec(
            (any_group_name(), gid()).prop_map(|(name, gid)| Group { name, gid }),
            0..4,
        ),
    )
        .prop_map(|(name, uid, gid, primary_group, nologin, groups)| Account {
            home: PathBuf::from("/home").join(&name),
            name,
            uid,
            gid,
            primary_group,
            shell: if nologin { "/usr/sbin/nologin" } else { "/bin/bash" }.into(),
            login_shell: !nologin,
            groups,
            locked: false,
        })
}

/// Up to three entries drawn from `near` (the names a grant would need), `"*"` and `pool`.
fn some_of(near: Vec<String>, pool: BoxedStrategy<String>) -> BoxedStrategy<Vec<String>> {
    let near = if near.is_empty() {
        pool.clone()
    } else {
        prop::sample::select(near).boxed()
    };
    prop::collection::vec(prop_oneof![3 => near, 1 => Just("*".to_owned()), 1 => pool], 0..3).boxed()
}

/// A grant whose lists draw on `names` and `groups` (an account's own, say).
fn grant_near(names: Vec<String>, groups: Vec<String>) -> impl Strategy<Value = UsersGrant> {
    (
        some_of(names.clone(), any_name().boxed()),
        some_of(groups.clone(), any_group_name().boxed()),
        any::<bool>(),
        some_of(names, any_name().boxed()),
        some_of(groups, any_group_name().boxed()),
    )
        .prop_map(
            |(names, groups, self_service, system_accounts, system_groups)| UsersGrant {
                names,
                groups,
                self_service,
                system_accounts,
                system_groups,
                temporary_groups: Vec::new(),
                ..UsersGrant::default()
            },
        )
}

/// login.defs, an account, a grant around it and a caller (often the account's owner).
fn scenario() -> impl Strategy<Value = (LoginDefs, Account, UsersGrant, String)> {
    any_login_defs()
        .prop_flat_map(|defs| (Just(defs), any_account(defs)))
        .prop_flat_map(|(defs, a)| {
            let groups = memberships(&a).into_iter().map(|(name, _)| name).collect();
            let caller = prop_oneof![Just(a.name.clone()), any_name()];
            (
                Just(defs),
                grant_near(vec![a.name.clone()], groups),
                caller,
                Just(a),
            )
        })
        .prop_map(|(defs, g, caller, a)| (defs, a, g, caller))
}

/// Whether group `name` with `gid` is a system group, spelled out apart from [`Reach`].
fn system_group(defs: &LoginDefs, name: &str, gid: Option<u32>) -> bool {
    matches!(gid, Some(gid) if gid == 0 || gid < defs.gid_min || gid > defs.gid_max)
        || name == "root"
        || is_reserved(name)
}

/// Whether `a` is a system account, spelled out apart from [`Reach`].
fn system_account(defs: &LoginDefs, a: &Account) -> bool {
    a.uid == 0
        || a.name == "root"
        || a.uid < defs.uid_min
        || a.uid > defs.uid_max
        || !a.login_shell
        || is_reserved(&a.name)
        || system_group(defs, a.primary_group.as_deref().unwrap_or(""), Some(a.gid))
}

/// The account's groups, primary first, as (name, gid).
fn memberships(a: &Account) -> Vec<(String, u32)> {
    a.primary_group
        .iter()
        .map(|p| (p.clone(), a.gid))
        .chain(a.groups.iter().map(|g| (g.name.clone(), g.gid)))
        .collect()
}

/// Whether the grant reaches group `name`, spelled out apart from [`Reach`].
fn group_granted(defs: &LoginDefs, g: &UsersGrant, name: &str, gid: Option<u32>) -> bool {
    g.system_groups.iter().any(|s| s == name)
        || (!system_group(defs, name, gid) && g.groups.iter().any(|s| s == name || s == "*"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Never root, never a system account (by uid range, shell, name or primary group) unless
    /// `system_accounts` names it exactly; never an account outside the grant's groups, or in
    /// a system group the grant leaves out, except the caller's own ordinary account by self
    /// service. And not a check that refuses everything: what is within the grant is reached.
    #[test]
    fn an_account_is_reached_only_within_the_grant((defs, a, g, caller) in scenario()) {
        let reached = Reach::new(&g, defs, &caller).account(&a).is_ok();
        let explicit = g.system_accounts.contains(&a.name);
        let system = system_account(&defs, &a);
        let own = g.self_service && caller == a.name && !system;
        let named = g.names.iter().any(|n| *n == a.name || n == "*");
        let in_granted_group = memberships(&a)
            .iter()
            .any(|(n, gid)| group_granted(&defs, &g, n, Some(*gid)));
        let no_unnamed_system_group = memberships(&a)
            .iter()
            .all(|(n, gid)| !system_group(&defs, n, Some(*gid)) || g.system_groups.contains(n));
        if reached && !own {
            prop_assert!(!system || explicit, "system account reached without being named");
            prop_assert!(named || explicit, "not named");
            prop_assert!(in_granted_group, "outside the grant's groups");
            prop_assert!(explicit || no_unnamed_system_group, "member of an unnamed system group");
        }
        if a.uid == 0 || a.name == "root" {
            prop_assert!(!reached || explicit, "root reached");
        }
        // Named in system_accounts, or an ordinary account named in names with no unnamed
        // system group; and either way in a group the grant reaches.
        let within = (explicit || (!system && named && no_unnamed_system_group)) && in_granted_group;
        prop_assert_eq!(reached, own || within);
    }

    /// `"*"` in `system_accounts` or `system_groups` changes nothing.
    #[test]
    fn a_star_names_no_system_account_or_group((defs, a, g, caller) in scenario()) {
        let mut without = g.clone();
        without.system_accounts.retain(|n| n != "*");
        without.system_groups.retain(|n| n != "*");
        let mut with = without.clone();
        with.system_accounts.push("*".into());
        with.system_groups.push("*".into());
        prop_assert_eq!(
            Reach::new(&with, defs, &caller).account(&a),
            Reach::new(&without, defs, &caller).account(&a)
        );
        for (name, gid) in memberships(&a) {
            if let Ok(name) = name.parse::<super::super::GroupName>() {
                prop_assert_eq!(
                    Reach::new(&with, defs, &caller).group(&name, Some(gid)),
                    Reach::new(&without, defs, &caller).group(&name, Some(gid))
                );
            }
        }
    }

    /// A group is reached exactly when `system_groups` names it, or it is an ordinary group
    /// that `groups` names or covers with `"*"`; gid 0, root and ids outside GID_MIN..=GID_MAX
    /// never through `groups`.
    #[test]
    fn a_group_is_reached_only_within_the_grant(
        (defs, name, gid, g) in any_login_defs().prop_flat_map(|defs| {
            (
                Just(defs),
                any_group_name(),
                prop::option::weighted(0.9, id_around(defs.gid_min, defs.gid_max)),
            )
        })
        .prop_flat_map(|(defs, name, gid)| {
            (Just(defs), Just(name.clone()), Just(gid), grant_near(vec![], vec![name]))
        }),
        caller in any_name(),
    ) {
        let name: super::super::GroupName = name.parse().expect("generated names are valid");
        let reached = Reach::new(&g, defs, &caller).group(&name, gid).is_ok();
        prop_assert_eq!(reached, group_granted(&defs, &g, name.as_str(), gid));
        let system = gid.is_some_and(|id| id == 0 || id < defs.gid_min || id > defs.gid_max)
            || name.as_str() == "root";
        if system {
            prop_assert!(!reached || g.system_groups.iter().any(|s| s == name.as_str()));
        }
    }

    /// A new account is created only under a name `names` covers and that is not reserved, or
    /// one `system_accounts` names; self service creates nothing.
    #[test]
    fn a_new_account_is_reached_only_within_the_grant(
        (name, g) in any_name().prop_flat_map(|name| (Just(name.clone()), grant_near(vec![name], vec![]))),
        defs in any_login_defs(),
        caller in any_name(),
    ) {
        let Ok(name) = name.parse::<UserName>() else { return Ok(()) };
        let reached = Reach::new(&g, defs, &caller).new_account(&name).is_ok();
        let explicit = g.system_accounts.iter().any(|n| n == name.as_str());
        let named = g.names.iter().any(|n| n == name.as_str() || n == "*");
        prop_assert_eq!(reached, explicit || (named && !is_reserved(name.as_str())));
        if name.as_str() == "root" {
            prop_assert!(!reached || explicit);
        }
    }
}
