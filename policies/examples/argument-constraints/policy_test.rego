package sesame_test

import data.sesame

open(args) := d if {
	d := sesame.decision with input as {"request": {"cluster": "access", "command": "open", "args": args}}
}

test_allowed_port_is_granted_alone if {
	d := open(["443"])
	d.allow
	d.grant.firewall.ports == [443]
}

test_port_outside_the_set_denied if {
	d := open(["25"])
	not d.allow
	d.reasons == ["port 25 may not be opened (allowed: [22, 443, 8443])"]
}

test_malformed_ports_denied if {
	every arg in ["022", "-1", "22 ", "", "0x16", "123456"] {
		open([arg]).reasons == [sprintf("%q is not a port number", [arg])]
	}
}

test_argument_count_checked if {
	open([]).reasons == ["access::open takes exactly one argument, a port"]
	open(["22", "443"]).reasons == ["access::open takes exactly one argument, a port"]
}

test_other_commands_denied if {
	d := sesame.decision with input as {"request": {"cluster": "basic", "command": "echo", "args": ["22"]}}
	d.reasons == ["only access::open is allowed"]
}
