"""data_prep: corpus readers, the paper's MFCC features, speaker-independent folds, a feature store."""
