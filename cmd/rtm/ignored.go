package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/rtm-project/rtm/internal/command"
)

// ignoredWords counts the words of routes that `ip route` prints or takes
// but rtm does not keep (scope, linkdown, onlink, ...), and which ones
// they were, for one line on stderr at the end.
type ignoredWords struct {
	n     int
	names map[string]bool // the keywords seen
	known map[string]bool // words tried: whether the parser skips them
}

// note counts n ignored words of the route line and finds their names.
func (ig *ignoredWords) note(line string, n int) {
	ig.n += n
	if ig.names == nil {
		ig.names, ig.known = map[string]bool{}, map[string]bool{}
	}
	for w := range strings.FieldsSeq(line) {
		skipped, ok := ig.known[w]
		if !ok {
			skipped = command.IgnoredWord(w)
			ig.known[strings.Clone(w)] = skipped
		}
		if skipped && !ig.names[w] {
			ig.names[strings.Clone(w)] = true
		}
	}
}

// add adds the counts of o.
func (ig *ignoredWords) add(o *ignoredWords) {
	if o.n == 0 {
		return
	}
	ig.n += o.n
	if ig.names == nil {
		ig.names = map[string]bool{}
	}
	for w := range o.names {
		ig.names[w] = true
	}
}

// report says on stderr how many words rtm ignored, if any.
func (ig *ignoredWords) report() {
	if ig.n == 0 {
		return
	}
	var names []string
	for w := range ig.names {
		names = append(names, w)
	}
	slices.Sort(names)
	word := "words"
	if ig.n == 1 {
		word = "word"
	}
	fmt.Fprintf(os.Stderr, "rtm: ignored %d %s (%s) not kept by rtm\n", ig.n, word, strings.Join(names, ", "))
	ig.n = 0
}
