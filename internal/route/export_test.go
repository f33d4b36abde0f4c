package route

// ParseLineSlow is the general parser, without the IPv4 fast path, for
// differential tests.
var ParseLineSlow = parseLine
