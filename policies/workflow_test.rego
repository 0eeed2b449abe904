package cabgate.rules.workflow_test

import data.cabgate.rules.workflow

transition(actions, when) := {"index": 0, "name": "t", "from": "a", "to": "b", "actions": actions, "when": when}

findings_of(transitions, states) := fs if {
	fs := workflow.findings with input as {"index": {"workflow": {"transitions": transitions, "states": states}}}
}

test_approving_without_an_approved_change_is_unsafe if {
	some f in findings_of([transition(["approve_issue"], {"issue.approvalStatus": ["PENDING"]})], {})
	f.code == "workflow/unsafe"
	f.path == "/workflow/transitions/0/when"
}

test_any_of_several_approval_values_is_unsafe if {
	some f in findings_of([transition(["run_tasks"], {"change.approval": ["approved", "requested"]})], {})
	f.code == "workflow/unsafe"
}

test_an_approved_change_makes_it_safe if {
	count(findings_of([transition(["create_rollout", "run_tasks"], {"change.approval": ["approved"]})], {})) == 0
}

test_other_actions_need_no_approval if {
	count(findings_of([transition(["create_change", "comment"], {})], {})) == 0
}

test_unreachable_and_stuck_states_are_reported if {
	states := {
		"new": {"reachable": true, "canFinish": true, "final": false},
		"island": {"reachable": false, "canFinish": true, "final": false},
		"stuck": {"reachable": true, "canFinish": false, "final": false},
	}
	messages := {f.message | some f in findings_of([], states); f.code == "workflow/unreachable"}
	count(messages) == 2
}
