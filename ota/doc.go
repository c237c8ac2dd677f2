// Package ota updates the box's models safely: bundles signed through TUF (go-tuf v2) are
// downloaded with resume into an A/B slot, unpacked with bounds, self-tested, switched by an
// atomic symlink rename, kept on trial and committed, or rolled back. It also holds the IT
// side's repository tooling (init, publish, recall, key rotation); ota/README.md says how.
package ota
