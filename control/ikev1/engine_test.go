package ikev1

import "github.com/cgw-project/cgw/control/ike"

// cgw-control drives every engine through ike.Engine.
var _ ike.Engine = (*Manager)(nil)
