package sesame_test

import data.sesame

req(groups, cluster, command) := {
	"client": {"name": "olga", "groups": groups},
	"request": {"cluster": cluster, "command": command, "args": []},
}

with_reason(groups, cluster, command, reason) := object.union(req(groups, cluster, command), {"request": {"reason": reason}})

test_a_ticketed_change_names_its_ticket if {
	d := sesame.decision with input as with_reason(["onboarders"], "accounts", "user-add", "OPS-77 new hire bob")
	d.allow
	d.reasons == ["OPS-77: olga runs accounts::user-add"]
}

test_no_reason_is_denied_with_an_example if {
	d := sesame.decision with input as req(["onboarders"], "accounts", "user-add")
	not d.allow
	d.reasons == [`accounts::user-add changes the host, so it needs a ticket: sesame run --reason "OPS-1234 why" ...`]
}

test_a_reason_without_a_leading_ticket_is_denied if {
	d := sesame.decision with input as with_reason(["staff"], "accounts", "key-add", "new laptop, see OPS-9")
	not d.allow
	d.reasons == [`accounts::key-add needs a reason that starts with a ticket id like OPS-1234; got "new laptop, see OPS-9"`]
	e := sesame.decision with input as with_reason(["staff"], "accounts", "key-add", "ops-9 lower case")
	not e.allow
}

test_untracked_clusters_need_no_ticket if {
	d := sesame.decision with input as req(["staff"], "basic", "echo")
	d.allow
	d.reasons == ["olga runs basic::echo"]
}

test_a_ticket_does_not_grant_what_no_group_does if {
	d := sesame.decision with input as with_reason(["staff"], "accounts", "user-add", "OPS-1 please")
	not d.allow
	d.reasons == ["no group of olga grants accounts::user-add"]
}
