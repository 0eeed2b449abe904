package cabgate.rules.waiver_test

import data.cabgate.rules.waiver

waivers := [
	{"code": "lockdown/unexpected-holder", "resource": "projects/sandbox", "reason": "r", "expires": "2026-12-02"},
	{"code": "rollout/roles", "reason": "r", "expires": "2026-12-03"},
]

test_a_waiver_expires_the_day_after_its_date if {
	findings := waiver.findings with input as {"spec": {"waivers": waivers}, "now": "2026-12-03T08:00:00Z"}
	count(findings) == 1
	some f in findings
	f.path == "/waivers/0/expires"
	f.resource == "projects/sandbox"
}
