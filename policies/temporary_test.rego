# Tests for the temporary-groups rules of sesame.rego (helpers `req` and `accounts` are
# in sesame_test.rego). Run: `sesamed policy test policies/`.
package sesame_test

import data.sesame

test_admins_may_add_to_sudo_only_for_a_while if {
	d := accounts("ada", ["admins"], "group-add", ["dave", "sudo", "--ttl", "1h"])
	d.allow
	d.grant.users == {
		"names": ["dave"],
		"groups": ["developers", "operators"],
		"system_groups": ["adm", "sudo"],
		"temporary_groups": ["adm", "sudo"],
		"max_ttl_s": 3600,
	}
}

test_privileged_groups_are_for_group_add_only if {
	every command in ["group-remove", "user-remove", "user-lock"] {
		d := accounts("ada", ["admins"], command, ["dave", "sudo"])
		d.grant.users == {"names": ["dave"], "groups": ["developers", "operators"]}
	}
}

test_onboarders_get_no_privileged_groups if {
	d := accounts("oscar", ["onboarders"], "group-add", ["dave", "sudo"])
	d.grant.users == {"names": ["dave"], "groups": ["developers"]}
}

test_self_service_gets_no_privileged_groups if {
	d := accounts("ada", ["admins", "staff"], "key-add", ["ssh-ed25519 AAAA"])
	d.grant.users == {"self": true}
}

shorter_temporary := {
	"admins": {"groups": ["sudo"], "max_ttl_s": 3600},
	"oncall": {"groups": ["adm"]},
	"leads": {"groups": ["sudo"], "max_ttl_s": 600},
}

shorter_users := object.union(data.acl.clusters.accounts.users, {"temporary": shorter_temporary})

shorter_accounts := object.union(data.acl.clusters.accounts, {"users": shorter_users})

shorter_acl := object.union(data.acl, {"clusters": object.union(data.acl.clusters, {"accounts": shorter_accounts})})

test_the_shortest_ttl_of_the_clients_groups_wins if {
	d := sesame.decision with input as req("ada", ["admins", "leads"], "accounts", "group-add", ["dave", "sudo"]) with data.acl as shorter_acl
	d.grant.users.max_ttl_s == 600
	e := sesame.decision with input as req("ada", ["admins", "oncall"], "accounts", "group-add", ["dave", "adm"]) with data.acl as shorter_acl
	e.grant.users.max_ttl_s == 3600
	e.grant.users.temporary_groups == ["adm", "sudo"]
}
