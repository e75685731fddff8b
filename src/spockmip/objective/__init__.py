"""What training minimises: the Focal Tversky loss, the MIP loss and the continuity terms, DS6's deformation
branch, one batch's loss."""
