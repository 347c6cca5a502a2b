# Tests for the approvals rules of sesame.rego (helpers `req` and `decide` are in
# sesame_test.rego). Run: `sesamed policy test policies/`.
package sesame_test

import data.sesame

two_person_acl := object.union(data.acl, {"clusters": object.union(data.acl.clusters, {"ops": object.union(data.acl.clusters.ops, {"approvals": {"count": 1, "groups": ["security"]}})})})

test_a_cluster_with_an_approvals_entry_asks_for_them if {
	d := sesame.decision with input as req("olga", ["operators"], "ops", "disk-usage", []) with data.acl as two_person_acl
	d.allow
	d.approvals == {"count": 1, "groups": ["security"]}
	d.grant.exec.programs == {"disk-usage": {}}
}

test_the_shipped_data_asks_for_no_approvals if {
	d := decide("olga", ["operators"], "ops", "disk-usage")
	d.allow
	not d.approvals
}

test_every_client_in_a_group_may_use_the_approvals_commands if {
	every command in ["pending", "approve", "reject", "result"] {
		d := decide("alice", ["users"], "approvals", command)
		d.allow
		d.reasons == [sprintf("group users may run approvals::%s", [command])]
		d.grant == {}
	}
}

test_a_client_in_no_group_may_not if {
	not decide("nobody", [], "approvals", "pending").allow
}
