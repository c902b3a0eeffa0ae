"""Where things are in a brain, on the ground floor: the MNI atlas (`atlas`), the lobe map and the lesion →
location rule (`lobes`), and the mask → truth rules (`rules`). Used alike by `synth` (to draw phantoms), `data`
(to label real scans) and `explain` (to name regions); imports nothing of brain3d but `errors` and `vocabulary`."""
