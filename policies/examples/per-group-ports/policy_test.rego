package sesame_test

import data.sesame

open_as(groups) := d if {
	d := sesame.decision with input as {
		"client": {"name": "pat", "groups": groups},
		"request": {"cluster": "access", "command": "open", "args": []},
	}
}

test_one_group_gets_its_ports if {
	d := open_as(["dbas"])
	d.allow
	d.grant.firewall == {"ports": [5432], "protos": ["tcp"], "sources": ["caller"], "max_ttl_s": 900}
}

test_groups_add_up_without_duplicates if {
	open_as(["web-admins", "ops"]).grant.firewall.ports == [22, 80, 443]
}

test_group_without_ports_denied if {
	d := open_as(["users"])
	not d.allow
	d.reasons == ["pat may not run access::open"]
}

test_other_commands_denied if {
	d := sesame.decision with input as {
		"client": {"name": "pat", "groups": ["ops"]},
		"request": {"cluster": "basic", "command": "echo", "args": []},
	}
	not d.allow
}
