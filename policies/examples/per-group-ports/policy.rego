# Example: per-group firewall ports.
#
# Every client may run access::open, and the firewall grant holds the ports
# of all the client's groups (data.acl.ports: GROUP -> [PORT, ...]), opened to
# the caller's own address only, over TCP, for at most 15 minutes. A client
# none of whose groups has ports is denied.
#
# Test: sesamed policy test policies/examples/per-group-ports
package sesame

decision := {
	"allow": true,
	"reasons": [sprintf("groups of %s may open ports %v", [input.client.name, ports])],
	"grant": {"firewall": {"ports": ports, "protos": ["tcp"], "sources": ["caller"], "max_ttl_s": 900}},
} if {
	request_is_open
	count(ports) > 0
} else := {
	"allow": false,
	"reasons": [sprintf("%s may not run %s::%s", [input.client.name, input.request.cluster, input.request.command])],
}

request_is_open if {
	input.request.cluster == "access"
	input.request.command == "open"
}

# The union of the ports of the client's groups, sorted.
ports := sort({port |
	some group in input.client.groups
	some port in object.get(data.acl.ports, group, [])
})
