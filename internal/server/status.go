package server

import (
	"errors"
	"fmt"

	"github.com/rtm-project/rtm/internal/wire"
)

// statusError is an error whose reply carries a status other than
// StatusError, so that a client can tell "exists" from "not found" from
// "permission denied" without reading the message.
type statusError struct {
	status byte
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func errExists(format string, args ...any) error {
	return &statusError{wire.StatusExists, fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) error {
	return &statusError{wire.StatusNotFound, fmt.Sprintf(format, args...)}
}

func errPermission(format string, args ...any) error {
	return &statusError{wire.StatusPermission, "permission denied: " + fmt.Sprintf(format, args...)}
}

// statusOf returns the reply status for err.
func statusOf(err error) byte {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.status
	}
	return wire.StatusError
}
