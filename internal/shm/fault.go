package shm

import (
	"fmt"
	"unsafe"
)

// Fault protection. A function that touches a mapping starts with
//
//	defer x.endAccess(debug.SetPanicOnFault(true), ...)
//
// so that a SIGBUS or SIGSEGV inside it (the object was truncated under the
// mapping) becomes a panic, which endAccess recovers if, and only if, its
// address lies in the mapping. Anything else is a bug and panics on.
// SetPanicOnFault is per goroutine and costs two calls; the old setting is
// restored, so a caller that set it keeps it.

// faultAddr returns the address of a memory fault that the runtime raised
// as a panic under debug.SetPanicOnFault.
func faultAddr(r any) (uintptr, bool) {
	e, ok := r.(interface {
		error
		RuntimeError()
		Addr() uintptr
	})
	if !ok {
		return 0, false
	}
	return e.Addr(), true
}

// inMapping reports whether the panic r is a memory fault inside mem, and
// re-raises r if it is not.
func inMapping(r any, mem []byte) error {
	addr, ok := faultAddr(r)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	if !ok || len(mem) == 0 || addr < base || addr >= base+uintptr(len(mem)) {
		panic(r)
	}
	return fmt.Errorf("fault at offset %d: %w", addr-base, ErrTruncated)
}
