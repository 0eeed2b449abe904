# Workflow safety (`cabgate lint`): no transition approves or runs without an approved CHG, and
# every state is reachable and can finish. Reachability is computed in Rust
# (`input.index.workflow.states`), since Rego has no recursion.
package cabgate.rules.workflow

# Actions that let a change reach a database.
gated := {"approve_issue", "create_rollout", "run_tasks"}

approved_only(transition) if {
	values := transition.when["change.approval"]
	count(values) > 0
	every value in values {
		value == "approved"
	}
}

findings contains f if {
	some t in input.index.workflow.transitions
	actions := [a | some a in t.actions; gated[a]]
	count(actions) > 0
	not approved_only(t)
	f := {
		"code": "workflow/unsafe",
		"message": concat("", [
			"transition ", t.name, " (", t.from, " → ", t.to, ") runs ", concat(", ", actions),
			" without requiring change.approval: approved",
		]),
		"path": concat("", ["/workflow/transitions/", format_int(t.index, 10), "/when"]),
	}
}

findings contains f if {
	some state, fact in input.index.workflow.states
	not fact.reachable
	f := {
		"code": "workflow/unreachable",
		"message": concat("", ["state ", state, " cannot be reached from the initial state"]),
		"path": "/workflow/transitions",
	}
}

findings contains f if {
	some state, fact in input.index.workflow.states
	fact.reachable
	not fact.canFinish
	f := {
		"code": "workflow/unreachable",
		"message": concat("", ["no path leads from state ", state, " to a final state"]),
		"path": "/workflow/transitions",
	}
}
