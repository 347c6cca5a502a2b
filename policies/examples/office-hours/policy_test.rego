package sesame_test

import data.sesame

# 2024-01-01 was a Monday; 1704067200 is its midnight, UTC.
monday_ns := 1704067200 * 1000000000

at(ns, groups) := d if {
	d := sesame.decision with input as {"client": {"name": "sam", "groups": groups}, "now_ns": ns}
}

hours(n) := n * 3600000000000

test_weekday_and_hour_arithmetic if {
	sesame.weekday == 1 with input as {"now_ns": monday_ns}
	sesame.hour == 13 with input as {"now_ns": monday_ns + hours(13) + 59 * 60000000000}
	sesame.weekday == 4 with input as {"now_ns": 0}
	sesame.weekday == 0 with input as {"now_ns": monday_ns - 1}
	sesame.hour == 23 with input as {"now_ns": monday_ns - 1}
}

test_allowed_monday_morning if {
	d := at(monday_ns + hours(9), ["staff"])
	d.allow
	d.reasons == ["sam may run commands in office hours (day 1, 09:xx UTC)"]
}

test_from_hour_inclusive_to_hour_exclusive if {
	at(monday_ns + hours(8), ["staff"]).allow
	not at(monday_ns + hours(18), ["staff"]).allow
}

test_denied_at_night if {
	d := at(monday_ns + hours(3), ["staff"])
	not d.allow
	d.reasons == ["sam may run commands only in office hours (now: day 1, 03:xx UTC)"]
}

test_denied_on_sunday if {
	not at(monday_ns - hours(12), ["staff"]).allow
}

test_outsiders_denied_any_time if {
	d := at(monday_ns + hours(9), ["guests"])
	d.reasons == ["no group of sam may run commands"]
}
