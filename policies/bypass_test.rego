package cabgate.rules.bypass_test

import data.cabgate.rules.bypass

issues := {
	"projects/pay": [{"name": "projects/pay/issues/7", "project": "projects/pay", "title": "drop table", "creator": "users/dev@acme.example"}],
	"projects/free": [{"name": "projects/free/issues/8", "project": "projects/free"}],
}

test_skipped_issues_of_governed_projects_are_reported if {
	findings := bypass.findings with input as {"index": {"skippedIssues": issues, "governedProjects": {"projects/pay": true}}}
	count(findings) == 1
	some f in findings
	f.resource == "projects/pay/issues/7"
	f.via == ["projects/pay", "created by users/dev@acme.example"]
}
