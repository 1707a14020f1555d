#pragma once

namespace l2m {

// `l2m vis_feats --images A B --encoder F [--encoder G ...]`: L2M's feature
// visualisation. Rows are images, columns the photo and one 3-component PCA
// picture of the ViT-B/14 patch features per encoder.
int RunVisFeatsCommand(int argc, char** argv);

}  // namespace l2m
