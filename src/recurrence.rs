//! Recurrence: the instances of a series in a time range. (Being written.)
