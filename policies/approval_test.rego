package cabgate.rules.approval_test

import data.cabgate.rules.approval

spec_doc := {"approval": {"catchAll": {"roles": ["roles/cab"]}, "allowEmptyFlows": false}}

rule(source, expression, roles) := {
	"source": source,
	"condition": {"expression": expression},
	"template": {"title": "t", "flow": {"roles": roles}},
}

codes(rules) := {f.code |
	fs := approval.findings with input as {
		"spec": spec_doc,
		"live": {"workspace": "workspaces/w", "approvalFeature": true, "approvalRules": rules},
	}
	some f in fs
}

test_the_seeded_fallback_rule_routes_elsewhere if {
	codes([rule("SOURCE_UNSPECIFIED", "true", ["roles/projectOwner"])]) == {"approval/catch-all-flow"}
}

test_a_matching_catch_all_is_clean if {
	codes([rule("SOURCE_UNSPECIFIED", "true", ["roles/cab"])]) == set()
}

test_a_true_rule_with_a_source_is_no_catch_all if {
	"approval/no-catch-all" in codes([rule("CHANGE_DATABASE", "true", ["roles/cab"])])
}

test_an_empty_flow_is_a_bypass if {
	"approval/empty-flow" in codes([rule("SOURCE_UNSPECIFIED", "true", ["roles/cab"]), rule("REQUEST_ROLE", "true", [])])
}

test_a_fallback_rule_after_the_catch_all_is_never_reached if {
	codes([rule("SOURCE_UNSPECIFIED", "true", ["roles/cab"]), rule("SOURCE_UNSPECIFIED", "resource.project_id == \"x\"", [])]) == set()
}

test_a_fallback_rule_before_the_catch_all_wins_for_its_projects if {
	codes([rule("SOURCE_UNSPECIFIED", "resource.project_id == \"x\"", []), rule("SOURCE_UNSPECIFIED", "true", ["roles/cab"])]) == {"approval/empty-flow", "approval/shadowed-catch-all"}
}

test_the_catch_all_condition_is_exactly_true if {
	"approval/no-catch-all" in codes([rule("SOURCE_UNSPECIFIED", "true || false", ["roles/cab"])])
}

test_an_empty_condition_never_matches if {
	codes([rule("SOURCE_UNSPECIFIED", "true", ["roles/cab"]), rule("CHANGE_DATABASE", "", [])]) == set()
}

test_a_source_rule_listed_after_the_catch_all_still_shadows_it if {
	"approval/shadowed-catch-all" in codes([
		rule("SOURCE_UNSPECIFIED", "true", ["roles/cab"]),
		rule("CHANGE_DATABASE", "resource.environment_id == \"prod\"", ["roles/projectOwner"]),
	])
}

test_a_stricter_source_rule_is_fine if {
	codes([
		rule("CHANGE_DATABASE", "resource.environment_id == \"prod\"", ["roles/cab", "roles/workspaceDBA"]),
		rule("SOURCE_UNSPECIFIED", "true", ["roles/cab"]),
	]) == set()
}

test_the_missing_feature_is_reported if {
	fs := approval.findings with input as {"spec": spec_doc, "live": {"workspace": "workspaces/w", "approvalFeature": false, "approvalRules": [rule("", "true", ["roles/cab"])]}}
	some f in fs
	f.code == "approval/feature-missing"
}

test_nothing_without_a_live_snapshot if {
	fs := approval.findings with input as {"spec": spec_doc, "live": null}
	count(fs) == 0
}

# Bytebase matches "true" itself at once and evaluates any other text as CEL: with blanks around
# it (a YAML block scalar leaves a newline) it is still true for every issue, so it is the
# catch-all. A no-break space is not CEL whitespace: that rule cannot compile and catches nothing.
test_a_true_condition_with_cel_whitespace_around_it_is_the_catch_all if {
	codes([rule("SOURCE_UNSPECIFIED", " true\n", ["roles/cab"])]) == set()
	codes([rule("SOURCE_UNSPECIFIED", "\ttrue ", ["roles/owner"])]) == {"approval/catch-all-flow"}
	"approval/no-catch-all" in codes([rule("SOURCE_UNSPECIFIED", "\u00a0true", ["roles/cab"])])
}
