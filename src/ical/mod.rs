//! iCalendar text: parsing feeds and CalDAV resources into the model, rendering published
//! events. (Being written.)
