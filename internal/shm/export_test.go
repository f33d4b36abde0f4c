package shm

// WriteForTest writes into a client's read-only mapping, which must fault.
func WriteForTest(v *View) { store(v.w, 0, 1) }

// ReadUnderGuardForTest reads b[0] under v's fault protection.
func ReadUnderGuardForTest(v *View, b []byte) (x byte, err error) {
	defer v.Unguard(v.Guard(), &err)
	return b[0], nil
}
