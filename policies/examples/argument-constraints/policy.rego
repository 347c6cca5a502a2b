# Example: constraints on arguments.
#
# access::open takes one argument, a port number; the request is allowed only
# when the argument is a decimal number (checked with a regex) among
# data.acl.open_ports. The firewall grant then names that one port, so the
# command can open nothing else even if it tried.
#
# Test: sesamed policy test policies/examples/argument-constraints
package sesame

default port_arg := ""

port_arg := input.request.args[0] if count(input.request.args) == 1

# A decimal port number with no sign, spaces or leading zeros.
well_formed if regex.match(`^[1-9][0-9]{0,4}$`, port_arg)

port := to_number(port_arg) if well_formed

deny_reasons contains "access::open takes exactly one argument, a port" if {
	count(input.request.args) != 1
}

deny_reasons contains sprintf("%q is not a port number", [port_arg]) if {
	count(input.request.args) == 1
	not well_formed
}

deny_reasons contains sprintf("port %d may not be opened (allowed: %v)", [port, data.acl.open_ports]) if {
	not port in data.acl.open_ports
}

deny_reasons contains "only access::open is allowed" if {
	[input.request.cluster, input.request.command] != ["access", "open"]
}

decision := {
	"allow": true,
	"reasons": [sprintf("port %d may be opened", [port])],
	"grant": {"firewall": {"ports": [port], "protos": ["tcp"], "sources": ["caller"], "max_ttl_s": 3600}},
} if {
	count(deny_reasons) == 0
} else := {
	"allow": false,
	"reasons": sort(deny_reasons),
}
