package command

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// AppendEventJSON appends one `rtm monitor -j` line for the route tables,
// without the newline: {"seq":N,"op":OP,"kind":"route", then the fields of
// `ip -j route`}. op is "add", "change", "del", "synced", "flush" or
// "resync"; r is used for add and change, and only r.Table and r.Dst for
// del. The other ops carry no kind and no route.
func AppendEventJSON(b []byte, seq uint64, op string, r route.Route) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"op":"`...)
	b = append(b, op...)
	b = append(b, '"')
	switch op {
	case "add", "change":
		b = append(b, `,"kind":"route",`...)
		j := r.AppendJSON(nil)
		return append(b, j[1:]...) // the route's object, without its '{'
	case "reset":
		// A reset other than a resync: rtmd has another history.
		b = append(b, `,"reason":"history"`...)
	case "del":
		b = append(b, `,"kind":"route","dst":"`...)
		b = appendDst(b, r.Dst)
		b = append(b, '"')
		if r.Table != route.TableMain {
			b = append(b, `,"table":"`...)
			b = append(b, route.TableName(r.Table)...)
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// appendDst appends a destination as ip prints it: "default" for a /0, an
// address alone for a host route.
func appendDst(b []byte, p netip.Prefix) []byte {
	switch {
	case p.Bits() == 0:
		return append(b, "default"...)
	case p.IsSingleIP():
		return p.Addr().AppendTo(b)
	}
	return p.AppendTo(b)
}

// AppendMACJSON appends a MAC entry as `ip -j neigh` names its fields:
// {"dst":IP,"dev":IF,"lladdr":MAC}, dev only when there is one.
func AppendMACJSON(b []byte, m mac.Addr, ip netip.Addr, dev string) []byte {
	b = append(b, '{')
	b = appendMACFields(b, m, ip, dev)
	return append(b, '}')
}

func appendMACFields(b []byte, m mac.Addr, ip netip.Addr, dev string) []byte {
	if ip.IsValid() {
		b = append(b, `"dst":"`...)
		b = append(ip.AppendTo(b), `",`...)
	}
	if dev != "" {
		b = append(b, `"dev":`...)
		b = append(strconv.AppendQuote(b, dev), ',')
	}
	b = append(b, `"lladdr":"`...)
	b = m.AppendTo(b)
	return append(b, '"')
}

// AppendMACText appends a MAC entry as `rtm mac show` prints it and `rtm
// mac load` reads it: "MAC IP [dev IF]".
func AppendMACText(b []byte, m mac.Addr, ip netip.Addr, dev string) []byte {
	b = append(m.AppendTo(b), ' ')
	b = ip.AppendTo(b)
	if dev != "" {
		b = append(append(b, " dev "...), dev...)
	}
	return b
}

// AppendMACEventJSON appends one `rtm monitor -j` line for the MAC table,
// without the newline: {"seq":N,"op":OP,"kind":"mac", then the fields of
// AppendMACJSON}. The IP is left out for "del", and when it is not valid
// (the entry is gone from shared memory by the time it is printed).
func AppendMACEventJSON(b []byte, seq uint64, op string, m mac.Addr, ip netip.Addr, dev string) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"op":"`...)
	b = append(b, op...)
	b = append(b, `","kind":"mac",`...)
	if op == "del" {
		ip = netip.Addr{}
	}
	b = appendMACFields(b, m, ip, dev)
	return append(b, '}')
}

// PrintStatus prints rtmd's status as `rtm status` does: JSON, or lines.
func PrintStatus(w io.Writer, st wire.Status, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "rtmd %s, up %s\n", st.Version, time.Duration(st.Uptime*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(w, "sequence %d; %d IPv4 routes, %d IPv6 routes, %d MAC entries\n", st.Seq, st.Routes4, st.Routes6, st.MACs)
	fmt.Fprintf(w, "clients: %d unix, %d tcp, %d compat\n", st.Clients["unix"], st.Clients["tcp"], st.Clients["compat"])
	for _, in := range []string{"socket", "queue", "tcp", "console"} {
		c := st.Inputs[in]
		fmt.Fprintf(w, "%-8s %d accepted, %d rejected\n", in+":", c.Accepted, c.Rejected)
	}
	queue := st.Queue
	if queue == "" && st.SHM != "" { // a TCP peer is told neither
		queue = "none"
	}
	fmt.Fprintf(w, "queue %s, shared memory %s", queue, st.SHM)
	if st.TCP != "" {
		fmt.Fprintf(w, ", tcp %s", st.TCP)
	}
	fmt.Fprintln(w)
	if s := st.State; s != nil {
		fmt.Fprintf(w, "state %s: journal %d bytes, %d commits, fsync p50 %.2f ms p99 %.2f ms\n", s.Dir, s.JournalBytes, s.Commits, s.FsyncP50, s.FsyncP99)
		if s.SnapshotTime != "" {
			fmt.Fprintf(w, "snapshot at sequence %d written %s, %d bytes\n", s.SnapshotSeq, s.SnapshotTime, s.SnapshotBytes)
		} else {
			fmt.Fprintln(w, "no snapshot yet")
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "last failed commit: %s\n", s.LastError)
		}
		if s.SnapshotError != "" {
			fmt.Fprintf(w, "last failed snapshot: %s\n", s.SnapshotError)
		}
	}
}

// RouteWriter writes routes as `rtm route show` prints them: the text of
// `ip route show` (Oneline: each route on one line, for ip -batch), or a
// JSON array as `ip -j route show`. Call Route for each route, then Close.
type RouteWriter struct {
	W       io.Writer
	JSON    bool
	Oneline bool

	buf []byte
	n   int
}

// Route writes r.
func (rw *RouteWriter) Route(r route.Route) error {
	b := rw.buf[:0]
	switch {
	case rw.JSON:
		if rw.n == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = r.AppendJSON(b)
	case rw.Oneline:
		b = append(r.AppendLine(b), '\n')
	default:
		b = append(r.AppendText(b), '\n')
	}
	rw.n++
	rw.buf = b
	_, err := rw.W.Write(b)
	return err
}

// Close ends the output: the JSON array's closing bracket.
func (rw *RouteWriter) Close() error {
	if !rw.JSON {
		return nil
	}
	end := "]\n"
	if rw.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(rw.W, end)
	return err
}
