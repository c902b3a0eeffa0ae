"""`brain3d report`: run a trained model on scans (files, DICOM series, folders, manifests)."""
