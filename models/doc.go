// Package models holds the model bundles the firmware ships with (DESIGN.md, "Model bundle"),
// embedded in the binary as the seed of its model slots. Each bundle's MODEL_CARD.md says how it
// was made and how well it does; every model here is trained on phantoms and not for clinical
// use.
package models
