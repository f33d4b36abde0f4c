package main

import (
	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/route"
)

// The command parser and the text forms work on the route package's types;
// the client library takes and returns its own, which hold the same values.

// publicRoute converts a parsed route for the client library.
func publicRoute(r *route.Route) client.Route {
	p := client.Route{Table: r.Table, Dst: r.Dst, Type: client.RouteType(r.Type),
		Protocol: client.Protocol(r.Proto), Metric: r.Metric, Src: r.Src}
	for _, h := range r.Hops {
		p.NextHops = append(p.NextHops, client.NextHop{Gateway: h.Gateway, Dev: h.Dev, Weight: int(h.Weight)})
	}
	return p
}

// internalRoute converts a route the client library returned, for printing.
func internalRoute(p client.Route) route.Route {
	r := route.Route{Table: p.Table, Dst: p.Dst, Attrs: route.Attrs{Type: route.Type(p.Type),
		Proto: route.Proto(p.Protocol), Metric: p.Metric, Src: p.Src}}
	if r.Table == 0 {
		r.Table = route.TableMain
	}
	if r.Type == 0 {
		r.Type = route.Unicast
	}
	if len(p.NextHops) > 0 {
		r.Hops = make([]route.NextHop, len(p.NextHops))
		for i, h := range p.NextHops {
			r.Hops[i] = route.NextHop{Gateway: h.Gateway, Dev: h.Dev, Weight: uint16(max(h.Weight, 1))}
		}
	}
	return r
}

// publicSelector converts a parsed selector for the client library.
func publicSelector(s route.Selector) client.Selector {
	return client.Selector{Table: s.Table, Mode: client.PrefixMode(s.Mode), Prefix: s.Prefix, Dev: s.Dev,
		Via: s.Via, Protocol: client.Protocol(s.Proto), HasProto: s.HasProto, Type: client.RouteType(s.Type),
		Metric: s.Metric, HasMetric: s.HasMetric}
}
