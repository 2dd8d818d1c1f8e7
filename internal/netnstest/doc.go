// Package netnstest gives end-to-end tests their own network namespaces:
// the prerequisite check every such test starts with, namespaces with
// unique names that are deleted when the test ends, veth pairs between
// them, and a way to run commands or Go code inside one (Linux only).
//
// It is for tests only (it takes a testing.TB); code that ships enters
// namespaces by its own means.
package netnstest
