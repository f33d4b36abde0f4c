package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseRoutesErrorLine(t *testing.T) {
	var b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&b, "10.%d.%d.0/24 via 192.0.2.1 dev eth0\n", i>>8&255, i&255)
		if i == 70000 {
			b.WriteString("# comment\n\n10.0.0.0/99 via 192.0.2.1 dev eth0\n")
		}
	}
	_, err := parseRoutes(b.String())
	if err == nil || !strings.HasPrefix(err.Error(), "70004: invalid dst") {
		t.Errorf("parseRoutes error = %v, want one at line 70004", err)
	}
}
