# Waivers past their date (`cabgate lint` and `check`). An expired waiver waives nothing; the
# engine applies the live ones.
package cabgate.rules.waiver

findings contains f if {
	today := substring(input.now, 0, 10)
	some i, waiver in input.spec.waivers
	waiver.expires < today
	f := {
		"code": "waiver/expired",
		"message": concat("", [
			"the waiver of ", waiver.code, " for ", scope(waiver), " expired on ", waiver.expires,
		]),
		"resource": object.get(waiver, "resource", null),
		"path": concat("", ["/waivers/", format_int(i, 10), "/expires"]),
	}
}

scope(waiver) := waiver.resource if is_string(waiver.resource) else := "every resource"
