# Example: office hours only.
#
# Members of data.acl.office_groups may run anything, but only on working days
# (data.acl.days, 0 = Sunday) between data.acl.from_hour (inclusive) and
# data.acl.to_hour (exclusive), UTC.
#
# The hour and weekday are computed from input.now_ns with plain arithmetic:
# sesamed's regorus is built without the `time` feature, so time.clock and
# time.weekday are not available. UTC only; for local time, add the offset in
# hours to `hour` (and mind the day boundary), or keep it UTC.
#
# Test: sesamed policy test policies/examples/office-hours
package sesame

ns_per_hour := 3600000000000

ns_per_day := 24 * ns_per_hour

# Nanoseconds since midnight, UTC.
ns_of_day := input.now_ns % ns_per_day

# Hour of the day, 0-23, UTC. Divisions are exact (a multiple divided by its
# factor): now_ns is beyond a float's 53 bits, and floor(now_ns / n) may round.
hour := (ns_of_day - (ns_of_day % ns_per_hour)) / ns_per_hour

# Day of the week, 0 = Sunday ... 6 = Saturday: 1970-01-01 was a Thursday (4).
weekday := (((input.now_ns - ns_of_day) / ns_per_day) + 4) % 7

in_office_hours if {
	weekday in data.acl.days
	hour >= data.acl.from_hour
	hour < data.acl.to_hour
}

office_member if {
	some group in input.client.groups
	group in data.acl.office_groups
}

decision := {
	"allow": true,
	"reasons": [sprintf("%s may run commands in office hours (day %d, %02d:xx UTC)", [input.client.name, weekday, hour])],
} if {
	office_member
	in_office_hours
} else := {
	"allow": false,
	"reasons": [sprintf("%s may run commands only in office hours (now: day %d, %02d:xx UTC)", [input.client.name, weekday, hour])],
} if {
	office_member
} else := {
	"allow": false,
	"reasons": [sprintf("no group of %s may run commands", [input.client.name])],
}
