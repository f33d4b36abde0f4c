package route

import "iter"

// NextLine splits the first logical line off text: its first line and the
// continuation lines after it, which begin with white space and then
// "nexthop", as `ip route show` prints the next hops of a multipath route.
// line keeps the newlines between them (ParseLine reads them as white
// space) and drops the last; n is the number of lines it spans (0 when
// text is empty). Lines may end in "\r\n".
func NextLine(text string) (line, rest string, n int) {
	end := 0
	for end < len(text) {
		i := indexNL(text[end:])
		n++
		if i < 0 {
			return text, "", n
		}
		end += i
		if !isContinuation(text[end+1:]) {
			return text[:end], text[end+1:], n
		}
		end++
	}
	return text[:end], "", n
}

// Lines yields the logical lines of text (see NextLine), each with the
// number of its first line, counted from 1. Blank lines and comments are
// yielded too: the caller skips them.
func Lines(text string) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		num := 1
		for text != "" {
			line, rest, n := NextLine(text)
			if !yield(num, line) {
				return
			}
			num += n
			text = rest
		}
	}
}

func indexNL[T string | []byte](s T) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return i
		}
	}
	return -1
}

// ScanLines is a bufio.SplitFunc for a bufio.Scanner that yields the
// logical lines of its input as NextLine splits them, without their last
// newline. A token spans 1 + (the number of '\n' in it) lines.
func ScanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	end := 0
	for {
		i := indexNL(data[end:])
		if i < 0 {
			if atEOF && len(data) > 0 {
				return len(data), data, nil
			}
			return 0, nil, nil // a line not yet complete
		}
		end += i
		next := data[end+1:]
		if indexNL(next) < 0 && !atEOF {
			return 0, nil, nil // to see whether the next line continues this one
		}
		if !isContinuation(next) {
			return end + 1, data[:end], nil
		}
		end++
	}
}

// isContinuation reports whether s begins with white space and "nexthop".
func isContinuation[T string | []byte](s T) bool {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	const kw = "nexthop"
	if i == 0 || len(s)-i < len(kw) {
		return false
	}
	for k := range len(kw) {
		if s[i+k] != kw[k] {
			return false
		}
	}
	return len(s)-i == len(kw) || isSpace(s[i+len(kw)])
}
