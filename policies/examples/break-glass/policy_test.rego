package sesame_test

import data.sesame

run(groups, cluster, command) := d if {
	d := sesame.decision with input as {
		"client": {"name": "eve", "groups": groups},
		"request": {"cluster": cluster, "command": command, "args": []},
	}
}

test_break_glass_may_run_anything if {
	d := run(["emergency"], "accounts", "user-remove")
	d.allow
	d.reasons == ["BREAK-GLASS: eve (group emergency) runs accounts::user-remove"]
}

test_every_reason_says_break_glass_even_with_other_grants if {
	d := run(["users", "emergency"], "basic", "echo")
	d.allow
	every reason in d.reasons {
		startswith(reason, "BREAK-GLASS")
	}
}

test_ordinary_grants_are_not_break_glass if {
	d := run(["users"], "basic", "echo")
	d.allow
	d.reasons == ["group users may run basic::echo"]
}

test_others_denied if {
	d := run(["users"], "accounts", "user-remove")
	not d.allow
	d.reasons == ["no group of eve grants accounts::user-remove"]
}
