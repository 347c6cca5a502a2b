# Tests for sesame.rego. Every rule named test_* must evaluate to true.
# Run: `sesamed policy test policies/` (or `cargo test -p sesamed policy`).
#
# Most tests use the real data.json; a few replace data.acl with `with` to
# exercise a setting the shipped data does not use (max_args).
package sesame_test

import data.sesame

# An input as sesamed builds it; `req` fills in the parts a test varies.
req(client, groups, cluster, command, args) := {
	"client": {"name": client, "key": "k", "groups": groups},
	"request": {
		"id": "00",
		"cluster": cluster,
		"command": command,
		"args": args,
		"transport": "quic",
		"source_ip": "192.0.2.7",
		"reason": "INC-1: a test",
	},
	"host": {"name": "h1", "labels": {}},
	"module": {"name": command, "digest": "sha256:00", "imports": []},
	"now_ns": 0,
}

decide(client, groups, cluster, command) := d if {
	d := sesame.decision with input as req(client, groups, cluster, command, [])
}

# --- allow -------------------------------------------------------------------

test_users_may_run_basic_echo if {
	d := decide("alice", ["users"], "basic", "echo")
	d.allow == true
	d.reasons == ["group users may run basic::echo"]
}

test_users_may_run_basic_whoami if {
	decide("alice", ["users"], "basic", "whoami").allow
}

test_any_granting_group_allows if {
	d := decide("alice", ["nobody", "users"], "basic", "echo")
	d.allow
	d.reasons == ["group users may run basic::echo"]
}

test_every_granting_group_is_a_reason if {
	d := decide("carol", ["testers", "users"], "basic", "echo")
	d.reasons == ["group testers may run basic::echo", "group users may run basic::echo"]
}

# --- wildcards -----------------------------------------------------------------

test_admins_may_run_anything if {
	decide("root", ["admins"], "access", "open").allow
	decide("root", ["admins"], "never-heard-of", "it").allow
}

test_command_wildcard if {
	decide("tess", ["testers"], "testing", "spin").allow
	decide("tess", ["testers"], "basic", "anything").allow
}

test_command_wildcard_stays_in_its_cluster if {
	not decide("tess", ["testers"], "access", "open").allow
}

test_star_is_only_a_pattern_in_data if {
	# A request for the literal command "*" gets no more than its name grants.
	not decide("alice", ["users"], "basic", "*").allow
}

# --- deny ----------------------------------------------------------------------

test_unknown_group_denied if {
	d := decide("mallory", ["strangers"], "basic", "echo")
	d.allow == false
	d.reasons == ["no group of client mallory (strangers) grants basic::echo"]
}

test_wrong_cluster_denied if {
	d := decide("alice", ["users"], "testing", "spin")
	not d.allow
	d.reasons == ["no group of client alice (users) grants testing::spin"]
}

test_wrong_command_denied if {
	d := decide("alice", ["users"], "basic", "rm")
	not d.allow
	d.reasons == ["no group of client alice (users) grants basic::rm"]
}

test_no_groups_denied if {
	d := decide("nemo", [], "basic", "echo")
	not d.allow
	d.reasons == ["client nemo belongs to no group, so may run nothing (asked for basic::echo)"]
}

test_denial_grants_nothing if {
	d := decide("alice", ["users"], "access", "open")
	not d.allow
	object.keys(d) == {"allow", "reasons"}
}

# --- limits --------------------------------------------------------------------

test_site_limits if {
	decide("alice", ["users"], "basic", "echo").limits == {"timeout_ms": 5000, "memory_mb": 64, "output_kb": 64}
}

test_cluster_limits_override_site_limits if {
	decide("tess", ["testers"], "testing", "spin").limits == {"timeout_ms": 1000, "memory_mb": 64, "output_kb": 64}
}

test_no_limits_in_data_means_daemon_defaults if {
	d := sesame.decision with input as req("a", ["g"], "c", "x", [])
		with data.acl as {"groups": {"g": {"c": ["x"]}}}
	d.allow
	d.limits == {}
}

# --- firewall grant --------------------------------------------------------------

test_access_cluster_grants_firewall_and_host_keys if {
	d := decide("root", ["admins"], "access", "open")
	d.grant == {
		"firewall": {"ports": [22], "protos": ["tcp"], "sources": ["caller"], "max_ttl_s": 3600},
		"hostkeys": {"list": true},
	}
}

test_users_may_open_ssh_for_themselves if {
	d := decide("alice", ["users"], "access", "allow")
	d.allow
	d.grant.firewall.sources == ["caller"]
	d.grant.firewall.ports == [22]
	decide("alice", ["users"], "access", "revoke").allow
	decide("alice", ["users"], "access", "grants").allow
}

# --- hostkeys grant ---------------------------------------------------------------

test_users_may_read_the_host_keys if {
	d := decide("alice", ["users"], "access", "known-hosts")
	d.allow
	d.reasons == ["group users may run access::known-hosts"]
	d.grant.hostkeys == {"list": true}
}

test_only_the_access_cluster_reads_host_keys if {
	not decide("alice", ["users"], "basic", "echo").grant.hostkeys
	not decide("olga", ["operators"], "ops", "disk-usage").grant.hostkeys
	not decide("alice", ["users"], "basic", "known-hosts").allow
}

test_other_clusters_grant_nothing if {
	decide("alice", ["users"], "basic", "echo").grant == {}
	decide("tess", ["testers"], "testing", "spin").grant == {}
}

# --- max_args ---------------------------------------------------------------------

acl_with_max_args := {
	"groups": {"users": {"basic": ["echo"]}},
	"clusters": {"basic": {"max_args": 2}},
}

test_max_args_allows_up_to_the_limit if {
	sesame.decision.allow with input as req("alice", ["users"], "basic", "echo", ["a", "b"])
		with data.acl as acl_with_max_args
}

test_max_args_denies_above_the_limit if {
	d := sesame.decision with input as req("alice", ["users"], "basic", "echo", ["a", "b", "c"])
		with data.acl as acl_with_max_args
	not d.allow
	d.reasons == ["basic::echo takes at most 2 arguments; client alice gave 3"]
}

test_args_unbounded_without_max_args if {
	args := [sprintf("%d", [n]) | some n in numbers.range(1, 100)]
	sesame.decision.allow with input as req("alice", ["users"], "basic", "echo", args)
}

# --- salt grant --------------------------------------------------------------------

test_operators_may_apply_listed_salt_states if {
	d := decide("olga", ["operators"], "config", "salt-apply")
	d.allow
	d.grant == {"salt": {"states": ["motd", "nginx", "ntp"], "pillar_keys": ["motd_text"]}}
	d.limits.timeout_ms == 300000
}

test_users_may_not_apply_salt_states if {
	not decide("alice", ["users"], "config", "salt-apply").allow
}

# --- exec grant --------------------------------------------------------------------

test_operators_get_the_one_program_named_like_their_command if {
	d := decide("olga", ["operators"], "ops", "restart-app")
	d.allow
	d.grant == {"exec": {"programs": {"restart-app": {"unit": ["web", "worker"]}}}}
	decide("olga", ["operators"], "ops", "disk-usage").grant == {"exec": {"programs": {"disk-usage": {}}}}
}

test_a_command_without_a_program_entry_gets_no_exec_grant if {
	d := decide("root", ["admins"], "ops", "reboot")
	d.allow
	d.grant == {}
}

test_users_may_not_run_programs if {
	not decide("alice", ["users"], "ops", "restart-app").allow
}

# --- accounts: self service ----------------------------------------------------------

accounts(client, groups, command, args) := d if {
	d := sesame.decision with input as req(client, groups, "accounts", command, args)
}

test_staff_may_add_keys_to_their_own_account_only if {
	d := accounts("alice", ["staff"], "key-add", ["ssh-ed25519 AAAA alice@laptop"])
	d.allow
	# The daemon resolves "self" to the caller's account; the policy names no account.
	d.grant == {"users": {"self": true}}
	accounts("alice", ["staff"], "key-remove", ["ssh-ed25519 AAAA"]).grant == {"users": {"self": true}}
}

test_self_service_ignores_manager_groups if {
	# An admin adding a key still manages only their own account, in no group.
	d := accounts("ada", ["admins"], "key-add", ["bob"])
	d.grant == {"users": {"self": true}}
}

test_self_service_does_not_copy_the_client_name if {
	# A client enrolled under a system account's name gets self service from the policy, and
	# the daemon refuses it: nothing in the grant names that account.
	d := accounts("daemon", ["staff"], "key-add", ["ssh-ed25519 AAAA"])
	d.grant == {"users": {"self": true}}
	not d.grant.users.names
	not d.grant.users.system_accounts
}

test_self_service_on_a_protected_account_denied if {
	d := accounts("root", ["staff"], "key-add", ["ssh-ed25519 AAAA"])
	not d.allow
	d.reasons == ["account root is protected: accounts::key-add may not manage it"]
}

# --- accounts: managers -----------------------------------------------------------------

test_onboarders_manage_the_named_account_in_developers if {
	d := accounts("oscar", ["onboarders"], "user-add", ["bob", "secret-hash"])
	d.allow
	d.grant == {"users": {"names": ["bob"], "groups": ["developers"]}}
}

test_onboarders_commands if {
	every command in ["user-add", "user-remove", "user-lock", "user-unlock", "group-add", "group-remove"] {
		accounts("oscar", ["onboarders"], command, ["bob", "developers"]).grant.users == {"names": ["bob"], "groups": ["developers"]}
	}
}

test_manager_groups_add_up if {
	d := accounts("ada", ["admins", "onboarders"], "user-remove", ["bob"])
	d.grant.users == {"names": ["bob"], "groups": ["developers", "operators"]}
}

test_the_stock_policy_never_grants_system_accounts_or_groups if {
	# Only an explicit system_accounts / system_groups entry lets the daemon touch a system
	# account or group; the stock policy has none, whoever asks for whatever, but for
	# group-add by admins, to the temporary groups only (temporary_test.rego).
	every d in [
		accounts("ada", ["admins"], "user-remove", ["daemon"]),
		accounts("ada", ["admins"], "group-remove", ["bob", "sudo"]),
		accounts("oscar", ["onboarders"], "user-lock", ["www-data"]),
		accounts("bin", ["staff"], "key-add", ["ssh-ed25519 AAAA"]),
	] {
		d.allow
		object.keys(d.grant.users) & {"system_accounts", "system_groups"} == set()
	}
}

test_managers_may_not_touch_protected_accounts if {
	d := accounts("oscar", ["onboarders"], "user-remove", ["root"])
	not d.allow
	d.reasons == ["account root is protected: accounts::user-remove may not manage it"]
	e := accounts("oscar", ["onboarders"], "user-lock", ["sesame"])
	e.reasons == ["account sesame is protected: accounts::user-lock may not manage it"]
}

test_managers_need_a_valid_account_name if {
	d := accounts("oscar", ["onboarders"], "user-add", ["-rf"])
	not d.allow
	d.reasons == [`accounts::user-add needs a valid account name as its first argument (got ["-rf"])`]
	e := accounts("oscar", ["onboarders"], "user-add", [])
	e.reasons == [`accounts::user-add needs a valid account name as its first argument (got [])`]
}

test_onboarders_may_not_add_keys if {
	d := accounts("oscar", ["onboarders"], "key-add", ["k"])
	d.reasons == ["no group of client oscar (onboarders) grants accounts::key-add"]
}

test_staff_may_not_add_users if {
	not accounts("alice", ["staff"], "user-add", ["bob"]).allow
}

test_non_managers_get_no_users_grant if {
	# A client allowed to run an accounts command but managing no group gets no users grant.
	d := sesame.decision with input as req("t", ["testers"], "accounts", "list", [])
		with data.acl.groups.testers as {"accounts": ["list"]}
	d.allow
	d.grant == {}
}

# --- mask ----------------------------------------------------------------------------

test_mask_comes_from_data if {
	sesame.mask == {"accounts::user-add": [1]}
}

test_mask_defaults_to_empty if {
	sesame.mask == {} with data.acl as {"groups": {}}
}
