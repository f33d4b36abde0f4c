package shm

// WriteForTest writes into a client's read-only mapping, which must fault.
func WriteForTest(v *View) { store(v.w, 0, 1) }
