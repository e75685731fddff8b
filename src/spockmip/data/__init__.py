"""What training and inference read: subjects and their patches, the training samplers, the cross-validation
splits."""
