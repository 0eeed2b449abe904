# Issues that bypassed approval (`cabgate check`): SKIPPED issues of governed projects inside the
# lookback window (`alerts.skippedApproval.lookback`; the window is cut in Rust, and the index
# groups the issues by project, so only governed projects' issues are visited).
package cabgate.rules.bypass

findings contains f if {
	some project, _ in input.index.governedProjects
	some issue in input.index.skippedIssues[project]
	f := {
		"code": "bypass/skipped-issue",
		"message": concat("", [
			issue.name, " (", object.get(issue, "title", "untitled"), ") has the approval status",
			" SKIPPED: it could roll out without any approval",
		]),
		"resource": issue.name,
		"via": array.concat([issue.project], creator(issue)),
		"path": "/alerts/skippedApproval/lookback",
	}
}

creator(issue) := [concat("", ["created by ", issue.creator])] if is_string(issue.creator) else := []
