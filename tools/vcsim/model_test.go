package main

import "testing"

// TestInstanceUUIDIsKeptWhenGiven: a vCenter keeps its instanceUuid across
// restarts, and vcdriver's node names carry it.
func TestInstanceUUIDIsKeptWhenGiven(t *testing.T) {
	const want = "8a3c1f2e-5b7d-4e0f-9a61-2c4d6e8f0a1b"
	v := newTestVCenter(t, "-instance-uuid", want)
	if got := v.c.ServiceContent.About.InstanceUuid; got != want {
		t.Fatalf("about.instanceUuid is %q, want %q", got, want)
	}
	if other := newTestVCenter(t); other.c.ServiceContent.About.InstanceUuid == want {
		t.Fatal("a launch without -instance-uuid reports the given one")
	}
}
