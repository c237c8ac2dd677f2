// Package models holds the model bundles the firmware ships with (DESIGN.md, "Model bundle"),
// embedded in the binary as the seed for its model slots.
//
// No bundle has been trained yet (issue 3); until one is, this package embeds nothing.
package models
