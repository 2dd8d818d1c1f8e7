package tables

import "github.com/cgw-project/cgw/crypto/transform"

// newCipher is transform.New; a variable so tests can count how many
// ciphers a sequence of snapshots builds.
var newCipher = transform.New
