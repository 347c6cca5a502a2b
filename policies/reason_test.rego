# Tests for the reason rules of sesame.rego (helpers `req` and `accounts` are in
# sesame_test.rego). Run: `sesamed policy test policies/`.
package sesame_test

import data.sesame

# --- reasons -------------------------------------------------------------------------

without_reason(client, groups, cluster, command, args) := d if {
	r := req(client, groups, cluster, command, args)
	d := sesame.decision with input as json.remove(r, ["request/reason"])
}

test_accounts_and_config_need_a_reason if {
	d := without_reason("alice", ["staff"], "accounts", "key-add", ["ssh-ed25519 AAAA"])
	not d.allow
	d.reasons == [`accounts::key-add needs a reason: say why with --reason (e.g. sesame run --reason "INC-1234: why this is needed" ...)`]
	e := without_reason("olga", ["operators"], "config", "salt-apply", ["motd"])
	e.reasons == [`config::salt-apply needs a reason: say why with --reason (e.g. sesame run --reason "INC-1234: why this is needed" ...)`]
	accounts("alice", ["staff"], "key-add", ["ssh-ed25519 AAAA"]).allow
}

test_other_clusters_need_no_reason if {
	without_reason("alice", ["users"], "basic", "echo", []).allow
	without_reason("alice", ["users"], "access", "allow", ["22"]).allow
}

ticket_reason := {"pattern": `^[A-Z]+-[0-9]+\b`, "example": "SEC-42 rotate key"}

ticket_accounts := object.union(data.acl.clusters.accounts, {"reason": ticket_reason})

ticket_acl := object.union(data.acl, {"clusters": object.union(data.acl.clusters, {"accounts": ticket_accounts})})

with_ticket(reason) := d if {
	r := object.union(req("alice", ["staff"], "accounts", "key-add", ["ssh-ed25519 AAAA"]), {"request": {"reason": reason}})
	d := sesame.decision with input as r with data.acl as ticket_acl
}

test_a_reason_pattern_wants_a_ticket_id if {
	with_ticket("SEC-42 rotate my laptop key").allow
	d := with_ticket("because I can")
	not d.allow
	d.reasons == [`accounts::key-add needs a reason matching ^[A-Z]+-[0-9]+\b (e.g. --reason "SEC-42 rotate key"); got "because I can"`]
	e := sesame.decision with input as json.remove(req("alice", ["staff"], "accounts", "key-add", ["k"]), ["request/reason"]) with data.acl as ticket_acl
	e.reasons == [`accounts::key-add needs a reason: say why with --reason (e.g. sesame run --reason "SEC-42 rotate key" ...)`]
}
